package abi

import (
	"unicode/utf8"

	"github.com/nylon-functions/nylon/protocol"
)

// Results of write, as the guest sees them.
const (
	ResultOK          int32 = 0
	ResultNotAllowed  int32 = -1 // not allowed in this phase (or outside a call)
	ResultTooLarge    int32 = -2 // the call's output would exceed MaxOutput
	ResultBadArgument int32 = -3 // unknown method, bad flags, bad status, room, header...
)

// FlagBroadcastExclude in the high 16 bits of write's method makes a
// broadcast skip the sending connection.
const FlagBroadcastExclude uint32 = 1 << 16

// maxCloseReason is the longest reason a WebSocket close may carry: a close
// frame's payload is at most 125 bytes, 2 of them the code.
const maxCloseReason = 123

// MaxErrorText bounds the error text (method 4). It has this room of its
// own, outside the call's output limit, so that a handler whose ops filled
// the output can still say why it fails; a longer text is cut to it (on a
// rune boundary, ending "…") rather than refused, so the text arrives. The
// gateway shows a client far less (200 bytes), and the node keeps the last
// one per endpoint for STATS: a bound keeps both small.
const MaxErrorText = 4 << 10

// errTextCut marks an error text cut to MaxErrorText.
const errTextCut = "…"

// allowed reports whether op code may be written in phase.
func allowed(code uint32, phase protocol.Phase) bool {
	switch {
	case code == protocol.MethodError:
		return true
	case protocol.IsResponseHeaderOp(code), code == protocol.OpSetResponseStatus:
		// Not in response_body_filter: the gateway sent the status and
		// headers before the first chunk and would drop these unseen.
		return phase == protocol.PhaseRequestFilter || phase == protocol.PhaseResponseFilter
	case protocol.IsResponseOp(code):
		return phase == protocol.PhaseRequestFilter || phase == protocol.PhaseResponseFilter || phase == protocol.PhaseResponseBodyFilter
	case protocol.IsRequestHeaderOp(code):
		return phase == protocol.PhaseRequestFilter
	case protocol.IsWSOp(code):
		return phase == protocol.PhaseEvent
	}
	return false
}

// known reports whether code is a write method of ABI v1.
func known(code uint32) bool {
	switch code {
	case protocol.MethodError,
		protocol.OpSetResponseHeader, protocol.OpRemoveResponseHeader, protocol.OpSetResponseStatus,
		protocol.OpSetResponseBody, protocol.OpSetStreamHeader, protocol.OpSetStreamData, protocol.OpSetStreamEnd,
		protocol.OpWSSendText, protocol.OpWSSendBinary, protocol.OpWSClose,
		protocol.OpWSJoinRoom, protocol.OpWSLeaveRoom, protocol.OpWSBroadcastText, protocol.OpWSBroadcastBinary,
		protocol.OpSetRequestHeader, protocol.OpRemoveRequestHeader, protocol.OpAddResponseHeader:
		return true
	}
	return false
}

// write validates and records one write of the guest.
func (s *State) write(method uint32, a, b []byte) int32 {
	code, flags := method&0xffff, method&^0xffff
	if !known(code) {
		return ResultBadArgument
	}
	if !allowed(code, s.phase) {
		return ResultNotAllowed
	}
	if flags != 0 && (flags != FlagBroadcastExclude || (code != protocol.OpWSBroadcastText && code != protocol.OpWSBroadcastBinary)) {
		return ResultBadArgument
	}

	if code == protocol.MethodError {
		// The error text replaces any earlier one. It does not count toward
		// the output limit (see MaxErrorText).
		s.errText = appendErrText(s.errText[:0], a)
		s.hasErr = true
		return ResultOK
	}

	var key, val []byte
	var num int64
	switch code {
	case protocol.OpSetResponseHeader, protocol.OpAddResponseHeader, protocol.OpSetRequestHeader:
		// protocol's rule, the one callers apply to any responder's reply:
		// a value with a control character (CR, LF, NUL, or e.g. 0x01 or
		// 0x7F, which strict proxies answer with 502) is refused here, where
		// the guest can still hear of it.
		if !protocol.ValidHeaderName(a) || !protocol.ValidHeaderValue(b) {
			return ResultBadArgument
		}
		key, val = a, b
	case protocol.OpRemoveResponseHeader, protocol.OpRemoveRequestHeader:
		if !protocol.ValidHeaderName(a) {
			return ResultBadArgument
		}
		key = a
	case protocol.OpSetResponseStatus:
		// Refused now, so the guest hears of a bad status rather than the
		// client getting a silent 200.
		n, ok := parseDecimal(a, 3)
		if !ok || !protocol.ValidStatus(n) {
			return ResultBadArgument
		}
		num = n
	case protocol.OpSetResponseBody, protocol.OpSetStreamHeader, protocol.OpSetStreamData, protocol.OpSetStreamEnd,
		protocol.OpWSSendText, protocol.OpWSSendBinary:
		val = a
	case protocol.OpWSClose:
		// Refused now: the edge would close with 1000 instead, and the
		// guest would never know its code was not sent.
		n, ok := parseDecimal(a, 4)
		if !ok || !protocol.ValidCloseCode(n) || len(b) > maxCloseReason {
			return ResultBadArgument
		}
		num, val = n, b
	case protocol.OpWSJoinRoom, protocol.OpWSLeaveRoom:
		if protocol.ValidateRoom(string(a)) != nil {
			return ResultBadArgument
		}
		key = a
	case protocol.OpWSBroadcastText, protocol.OpWSBroadcastBinary:
		if protocol.ValidateRoom(string(a)) != nil {
			return ResultBadArgument
		}
		key, val = a, b
		if flags&FlagBroadcastExclude != 0 {
			num = protocol.BroadcastExcludeSender
		}
	}

	size := len(key) + len(val) + OpOverhead
	if s.outBytes+size > s.maxOutput {
		return ResultTooLarge
	}
	s.outBytes += size
	s.ops = append(s.ops, opRef{
		code:   code,
		num:    num,
		keyOff: len(s.keys), keyLen: len(key),
		valOff: len(s.vals), valLen: len(val),
	})
	s.keys = append(s.keys, key...)
	s.vals = append(s.vals, val...)
	return ResultOK
}

// appendErrText appends text to dst, cut to MaxErrorText bytes on a rune
// boundary and marked when longer. It steps back at most the continuation
// bytes of one rune, so a text that is not UTF-8 (a run of continuation
// bytes) still keeps its first MaxErrorText bytes or so.
func appendErrText(dst, text []byte) []byte {
	if len(text) <= MaxErrorText {
		return append(dst, text...)
	}
	cut := MaxErrorText - len(errTextCut)
	for back := 0; back < utf8.UTFMax-1 && !utf8.RuneStart(text[cut]); back++ {
		cut--
	}
	return append(append(dst, text[:cut]...), errTextCut...)
}

// parseDecimal parses 1..maxDigits ASCII digits.
func parseDecimal(b []byte, maxDigits int) (int64, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
