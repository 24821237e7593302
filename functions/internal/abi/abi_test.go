package abi_test

import (
	"log/slog"
	"testing"

	"github.com/nylon-functions/nylon/functions/internal/abi"
	"github.com/nylon-functions/nylon/protocol"
)

// TestNumbersMatchProtocol fails when a number copied into the guest drifts
// from the host's definition in protocol.
func TestNumbersMatchProtocol(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		guest, host int64
	}{
		{"PhaseEvent", int64(abi.PhaseEvent), int64(protocol.PhaseEvent)},
		{"PhaseRequestFilter", int64(abi.PhaseRequestFilter), int64(protocol.PhaseRequestFilter)},
		{"PhaseResponseFilter", int64(abi.PhaseResponseFilter), int64(protocol.PhaseResponseFilter)},
		{"PhaseResponseBodyFilter", int64(abi.PhaseResponseBodyFilter), int64(protocol.PhaseResponseBodyFilter)},
		{"PhaseLogging", int64(abi.PhaseLogging), int64(protocol.PhaseLogging)},
		{"PhaseSetWebSocket", int64(abi.PhaseSetWebSocket), int64(protocol.PhaseSetWebSocket)},
		{"PhaseSet(request_filter)", 1 << abi.PhaseRequestFilter, int64(protocol.PhaseSetOf(protocol.PhaseRequestFilter))},
		{"PhaseSet(logging)", 1 << abi.PhaseLogging, int64(protocol.PhaseSetOf(protocol.PhaseLogging))},

		{"EventWSOpen", int64(abi.EventWSOpen), int64(protocol.EventWSOpen)},
		{"EventWSText", int64(abi.EventWSText), int64(protocol.EventWSText)},
		{"EventWSBinary", int64(abi.EventWSBinary), int64(protocol.EventWSBinary)},
		{"EventWSClose", int64(abi.EventWSClose), int64(protocol.EventWSClose)},

		{"ActionNext", int64(abi.ActionNext), int64(protocol.ActionNext)},
		{"ActionEnd", int64(abi.ActionEnd), int64(protocol.ActionEnd)},
		{"ActionError", int64(abi.ActionError), int64(protocol.ActionError)},

		{"GetPayload", int64(abi.GetPayload), int64(protocol.MethodGetPayload)},
		{"ReadResponseFullBody", int64(abi.ReadResponseFullBody), int64(protocol.ReadResponseFullBody)},
		{"ReadResponseStatus", int64(abi.ReadResponseStatus), int64(protocol.ReadResponseStatus)},
		{"ReadResponseBytes", int64(abi.ReadResponseBytes), int64(protocol.ReadResponseBytes)},
		{"ReadResponseHeaders", int64(abi.ReadResponseHeaders), int64(protocol.ReadResponseHeaders)},
		{"ReadResponseDuration", int64(abi.ReadResponseDuration), int64(protocol.ReadResponseDuration)},
		{"ReadResponseError", int64(abi.ReadResponseError), int64(protocol.ReadResponseError)},
		{"ReadRequestFullBody", int64(abi.ReadRequestFullBody), int64(protocol.ReadRequestFullBody)},
		{"ReadRequestHeader", int64(abi.ReadRequestHeader), int64(protocol.ReadRequestHeader)},
		{"ReadRequestHeaders", int64(abi.ReadRequestHeaders), int64(protocol.ReadRequestHeaders)},
		{"ReadRequestURL", int64(abi.ReadRequestURL), int64(protocol.ReadRequestURL)},
		{"ReadRequestPath", int64(abi.ReadRequestPath), int64(protocol.ReadRequestPath)},
		{"ReadRequestQuery", int64(abi.ReadRequestQuery), int64(protocol.ReadRequestQuery)},
		{"ReadRequestParams", int64(abi.ReadRequestParams), int64(protocol.ReadRequestParams)},
		{"ReadRequestHost", int64(abi.ReadRequestHost), int64(protocol.ReadRequestHost)},
		{"ReadRequestClientIP", int64(abi.ReadRequestClientIP), int64(protocol.ReadRequestClientIP)},
		{"ReadRequestMethod", int64(abi.ReadRequestMethod), int64(protocol.ReadRequestMethod)},
		{"ReadRequestBytes", int64(abi.ReadRequestBytes), int64(protocol.ReadRequestBytes)},
		{"ReadRequestTimestamp", int64(abi.ReadRequestTimestamp), int64(protocol.ReadRequestTimestamp)},
		{"ReadConfig", int64(abi.ReadConfig), int64(protocol.ReadConfig)},
		{"ReadRequestID", int64(abi.ReadRequestID), int64(protocol.ReadRequestID)},
		{"ReadRequestParam", int64(abi.ReadRequestParam), int64(protocol.ReadRequestParam)},
		{"ReadRequestQueryParam", int64(abi.ReadRequestQueryParam), int64(protocol.ReadRequestQueryParam)},
		{"ReadRequestScheme", int64(abi.ReadRequestScheme), int64(protocol.ReadRequestScheme)},
		{"ReadResponseHeader", int64(abi.ReadResponseHeader), int64(protocol.ReadResponseHeader)},
		{"ReadBodyChunkInfo", int64(abi.ReadBodyChunkInfo), int64(protocol.ReadBodyChunkInfo)},
		{"ReadWSConnectionID", int64(abi.ReadWSConnectionID), int64(protocol.ReadWSConnectionID)},
		{"ReadWSCloseCode", int64(abi.ReadWSCloseCode), int64(protocol.ReadWSCloseCode)},
		{"ReadWSCloseReason", int64(abi.ReadWSCloseReason), int64(protocol.ReadWSCloseReason)},
		{"ReadWSEvent", int64(abi.ReadWSEvent), int64(protocol.ReadWSEvent)},

		{"MethodError", int64(abi.MethodError), int64(protocol.MethodError)},
		{"OpSetResponseHeader", int64(abi.OpSetResponseHeader), int64(protocol.OpSetResponseHeader)},
		{"OpRemoveResponseHeader", int64(abi.OpRemoveResponseHeader), int64(protocol.OpRemoveResponseHeader)},
		{"OpSetResponseStatus", int64(abi.OpSetResponseStatus), int64(protocol.OpSetResponseStatus)},
		{"OpSetResponseBody", int64(abi.OpSetResponseBody), int64(protocol.OpSetResponseBody)},
		{"OpSetStreamHeader", int64(abi.OpSetStreamHeader), int64(protocol.OpSetStreamHeader)},
		{"OpSetStreamData", int64(abi.OpSetStreamData), int64(protocol.OpSetStreamData)},
		{"OpSetStreamEnd", int64(abi.OpSetStreamEnd), int64(protocol.OpSetStreamEnd)},
		{"OpWSSendText", int64(abi.OpWSSendText), int64(protocol.OpWSSendText)},
		{"OpWSSendBinary", int64(abi.OpWSSendBinary), int64(protocol.OpWSSendBinary)},
		{"OpWSClose", int64(abi.OpWSClose), int64(protocol.OpWSClose)},
		{"OpWSJoinRoom", int64(abi.OpWSJoinRoom), int64(protocol.OpWSJoinRoom)},
		{"OpWSLeaveRoom", int64(abi.OpWSLeaveRoom), int64(protocol.OpWSLeaveRoom)},
		{"OpWSBroadcastText", int64(abi.OpWSBroadcastText), int64(protocol.OpWSBroadcastText)},
		{"OpWSBroadcastBinary", int64(abi.OpWSBroadcastBinary), int64(protocol.OpWSBroadcastBinary)},
		{"OpSetRequestHeader", int64(abi.OpSetRequestHeader), int64(protocol.OpSetRequestHeader)},
		{"OpRemoveRequestHeader", int64(abi.OpRemoveRequestHeader), int64(protocol.OpRemoveRequestHeader)},
		{"OpAddResponseHeader", int64(abi.OpAddResponseHeader), int64(protocol.OpAddResponseHeader)},

		// The ABI carries the exclude-sender flag in the high 16 bits of
		// write's method; protocol carries it in Op.Num.
		{"FlagBroadcastExclude", int64(abi.FlagBroadcastExclude >> 16), int64(protocol.BroadcastExcludeSender)},
		{"ListSep", int64(abi.ListSep), int64(protocol.ListSep)},

		{"LevelDebug", int64(abi.LevelDebug), int64(slog.LevelDebug)},
		{"LevelInfo", int64(abi.LevelInfo), int64(slog.LevelInfo)},
		{"LevelWarn", int64(abi.LevelWarn), int64(slog.LevelWarn)},
		{"LevelError", int64(abi.LevelError), int64(slog.LevelError)},
	}
	for _, c := range cases {
		if c.guest != c.host {
			t.Errorf("%s: guest abi has %d, protocol has %d", c.name, c.guest, c.host)
		}
	}
}

// TestHostStubs pins the behaviour of the non-wasip1 stand-ins the SDK's host
// builds rely on: nothing is readable and every write is refused.
func TestHostStubs(t *testing.T) {
	t.Parallel()
	buf := make([]byte, 8)
	if n := abi.Read(abi.ReadRequestMethod, "", buf); n != abi.ReadAbsent {
		t.Errorf("Read = %d, want %d", n, abi.ReadAbsent)
	}
	if r := abi.Write(abi.OpSetResponseStatus, "200", ""); r != abi.ResultNotAllowed {
		t.Errorf("Write = %d, want %d", r, abi.ResultNotAllowed)
	}
	if r := abi.WriteBytes(abi.OpWSBroadcastBinary, "room", []byte("x")); r != abi.ResultNotAllowed {
		t.Errorf("WriteBytes = %d, want %d", r, abi.ResultNotAllowed)
	}
	if r := abi.WriteData(abi.OpSetResponseBody, []byte("x")); r != abi.ResultNotAllowed {
		t.Errorf("WriteData = %d, want %d", r, abi.ResultNotAllowed)
	}
	if r := abi.WriteNum(abi.OpSetResponseStatus, 200, ""); r != abi.ResultNotAllowed {
		t.Errorf("WriteNum = %d, want %d", r, abi.ResultNotAllowed)
	}
	abi.Log(abi.LevelInfo, []byte("discarded"))
}
