package sdk

import (
	"errors"
	"strconv"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// Kinds of write refusal; a *WriteError wraps one of them, so test with
// errors.Is(err, sdk.ErrNotAllowed).
var (
	// ErrNotAllowed: the write makes no sense in this phase, e.g. setting the
	// upstream request's headers from response_filter, a response header
	// in response_body_filter (the headers are already sent), any write in
	// logging, or a WebSocket send from an HTTP phase.
	ErrNotAllowed = errors.New("not allowed in this phase")
	// ErrTooLarge: the call's output (bodies, payloads, ops) went over the
	// node's limit: the deploy's --max-body-bytes, else the node's
	// (nylon serve --function-max-body-bytes, 1 MiB by default). Every op
	// counts its key and value plus 16 bytes.
	ErrTooLarge = errors.New("output too large")
	// ErrBadArgument: the node (or the SDK) rejected an argument, e.g. an
	// invalid header name or value, status or close code, or room name.
	ErrBadArgument = errors.New("bad argument")
)

// WriteError is a write the node (or the SDK, for an argument it can tell
// is bad) refused. Nothing was written: the call goes on without it.
type WriteError struct {
	Method uint32 // the ABI method number, e.g. 100 for set response header
	Err    error  // ErrNotAllowed, ErrTooLarge, ErrBadArgument, or an unknown code
}

// Error names the write and why it was refused, e.g.
// "write[set response header]: not allowed in this phase".
func (e *WriteError) Error() string {
	return "write[" + methodName(e.Method) + "]: " + e.Err.Error()
}

// Unwrap returns the kind of refusal, for errors.Is.
func (e *WriteError) Unwrap() error { return e.Err }

// writeErr maps a write result to an error; nil for ResultOK.
func writeErr(method uint32, rc int32) error {
	var kind error
	switch rc {
	case abi.ResultOK:
		return nil
	case abi.ResultNotAllowed:
		kind = ErrNotAllowed
	case abi.ResultTooLarge:
		kind = ErrTooLarge
	case abi.ResultBadArgument:
		kind = ErrBadArgument
	default:
		kind = errors.New("host result " + strconv.Itoa(int(rc)))
	}
	return &WriteError{Method: method & 0xffff, Err: kind}
}

func methodName(m uint32) string {
	switch m & 0xffff {
	case abi.MethodError:
		return "error"
	case abi.OpSetResponseHeader:
		return "set response header"
	case abi.OpRemoveResponseHeader:
		return "remove response header"
	case abi.OpAddResponseHeader:
		return "add response header"
	case abi.OpSetResponseStatus:
		return "set response status"
	case abi.OpSetResponseBody:
		return "set response body"
	case abi.OpWSSendText:
		return "ws send text"
	case abi.OpWSSendBinary:
		return "ws send binary"
	case abi.OpWSClose:
		return "ws close"
	case abi.OpWSJoinRoom:
		return "ws join room"
	case abi.OpWSLeaveRoom:
		return "ws leave room"
	case abi.OpWSBroadcastText:
		return "ws broadcast text"
	case abi.OpWSBroadcastBinary:
		return "ws broadcast binary"
	case abi.OpSetRequestHeader:
		return "set request header"
	case abi.OpRemoveRequestHeader:
		return "remove request header"
	}
	return strconv.Itoa(int(m & 0xffff))
}
