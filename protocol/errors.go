package protocol

import (
	"errors"
	"fmt"
)

// Caller error kinds (the seed's NylonError::Messaging { kind }). Transport
// errors are ErrTimeout, ErrNoResponder and ErrDecode; a handler error is
// ErrPlugin. Use errors.Is to classify and KindOf to name.
var (
	ErrTimeout     = errors.New("timeout")
	ErrNoResponder = errors.New("no responder")
	ErrDecode      = errors.New("decode")
	ErrPlugin      = errors.New("plugin")
)

// Kind names a caller error kind, for logs, metrics labels and the DLQ.
type Kind string

const (
	KindTimeout     Kind = "Timeout"
	KindNoResponder Kind = "NoResponder"
	KindDecode      Kind = "Decode"
	KindPlugin      Kind = "Plugin"
)

// KindOf classifies err; ok is false when err is none of the four kinds.
func KindOf(err error) (k Kind, ok bool) {
	switch {
	case errors.Is(err, ErrTimeout):
		return KindTimeout, true
	case errors.Is(err, ErrNoResponder):
		return KindNoResponder, true
	case errors.Is(err, ErrDecode):
		return KindDecode, true
	case errors.Is(err, ErrPlugin):
		return KindPlugin, true
	}
	return "", false
}

// Transport reports whether err is a transport failure (anything but a
// handler's own Error action).
func Transport(err error) bool {
	k, ok := KindOf(err)
	return ok && k != KindPlugin
}

// DecodeError says which field of a message could not be decoded. It wraps
// ErrDecode, and Err when set.
type DecodeError struct {
	Field string // e.g. "request_id", "data.request.headers"
	Err   error
}

func (e *DecodeError) Error() string {
	if e.Err == nil {
		return "decode " + e.Field
	}
	return fmt.Sprintf("decode %s: %v", e.Field, e.Err)
}

func (e *DecodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrDecode}
	}
	return []error{ErrDecode, e.Err}
}

// Decode-time sentinels, wrapped in a *DecodeError.
var (
	ErrUnsupportedVersion = errors.New("unsupported version")
	ErrTooLarge           = errors.New("payload too large")
)

// PluginError is a handler's answer with action Error.
type PluginError struct {
	Message string
}

func (e *PluginError) Error() string { return "plugin: " + e.Message }
func (e *PluginError) Unwrap() error { return ErrPlugin }

// Micro service error codes a node answers transport and decoding failures
// with, in the Nats-Service-Error-Code header.
const (
	ServiceErrDecode     = 400
	ServiceErrTooLarge   = 413
	ServiceErrInternal   = 500
	ServiceErrOverloaded = 503
	ServiceErrTimeout    = 504
)
