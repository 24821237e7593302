package gateway

import (
	"errors"
	"fmt"

	"github.com/nylon-functions/nylon/protocol"
)

var (
	// ErrInvalidConfig is wrapped by every configuration error: YAML syntax,
	// unknown keys, bad values and dangling references. The message names the
	// file and line when known and the path of the offending value, e.g.
	// `gateway.yaml:14: plugins[0].per_phase.request_filter.on_error: "retyr" is not one of continue|end|retry`.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrOverloaded is wrapped when a call could not be made for lack of
	// capacity: the gateway's own max_inflight (overflow_policy reject, or a
	// queue wait that outlasted the call's timeout) or a node answering with
	// service error 503. Answered with HTTP 503 and Retry-After.
	ErrOverloaded = errors.New("overloaded")

	// ErrInternal is wrapped when a node answers with service error 500: the
	// node failed around the handler (not the handler itself). HTTP 502.
	ErrInternal = errors.New("node internal error")

	// ErrOriginNotEnded is returned when a function serving as a route's
	// origin answers request_filter with Next: there is nothing behind it to
	// pass the request to. HTTP 502.
	ErrOriginNotEnded = errors.New("origin function did not end the request")

	// ErrDLQConflict is wrapped when the dead-letter stream named for a
	// subject prefix (DLQStreamName) exists with other subjects than the
	// prefix's {prefix}.dlq.>: usually a second prefix whose name collides
	// ("x" and "nylon.x"). EnsureDLQ leaves that stream alone, so Start and
	// `nylon serve` fail, and ListDLQ does not list it.
	ErrDLQConflict = errors.New("dead-letter stream belongs to other subjects")

	// ErrRestartRequired is wrapped when Reload refuses a configuration
	// that changes what only New sets up: a messaging config's connection
	// (servers, tls, auth, type), subject_prefix, dead-letter stream (dlq),
	// or the set of messaging configs. The message names the field.
	ErrRestartRequired = errors.New("needs a restart")

	// errShed is the limiter's verdict under overflow_policy shed: skip the
	// plugin as if on_error were continue.
	errShed = errors.New("shed")
)

// Error kinds as they appear in logs, the DLQ's Nylon-Error-Kind header and
// the kind label of plugins_messaging_errors_total. The first four are the
// seed's taxonomy (protocol.Kind); the others refine transport failures.
const (
	KindTimeout     = string(protocol.KindTimeout)
	KindNoResponder = string(protocol.KindNoResponder)
	KindDecode      = string(protocol.KindDecode)
	KindPlugin      = string(protocol.KindPlugin)
	KindOverloaded  = "Overloaded"
	KindTooLarge    = "TooLarge"
	KindInternal    = "Internal"
	KindCanceled    = "Canceled"
)

// tooLargeError is a request the gateway did not send: encoded, it is over
// the phase's max_payload_bytes or, when that is the smaller, the NATS
// server's max_payload (NATS would refuse to publish it). It wraps
// protocol.ErrTooLarge.
type tooLargeError struct {
	size, limit int64
	nats        bool // limit is the server's max_payload
}

func (e *tooLargeError) Error() string {
	what := "max_payload_bytes"
	if e.nats {
		what = "the NATS server's max_payload"
	}
	return fmt.Sprintf("%v: request of %d bytes, over %s of %d", protocol.ErrTooLarge, e.size, what, e.limit)
}

func (e *tooLargeError) Unwrap() error { return protocol.ErrTooLarge }

// CallError is a failed phase call after its last attempt. It wraps the
// cause, which in turn wraps one of protocol.ErrTimeout, ErrNoResponder,
// ErrDecode, ErrPlugin (a *protocol.PluginError), protocol.ErrTooLarge,
// ErrOverloaded or ErrInternal, so errors.Is classifies it.
type CallError struct {
	Plugin    string // the plugin's name from the configuration (the function's for function routes)
	Function  string
	Phase     protocol.Phase
	Subject   string
	RequestID protocol.RequestID
	Attempts  int
	Kind      string // one of the Kind* constants
	// Status is the HTTP status a plugin chose with its Error reply (op 102),
	// 0 when it chose none.
	Status int
	Err    error
	// dlqSubject is the subject the request was dead-lettered to after
	// its last attempt, for the log line; empty when it was not (a kind
	// that is not dead-lettered, dead letters disabled, the letter lost).
	dlqSubject string
}

func (e *CallError) Error() string {
	return fmt.Sprintf("plugin[%s] %s: %d attempt(s): %v", e.Plugin, e.Phase, e.Attempts, e.Err)
}

func (e *CallError) Unwrap() error { return e.Err }

// kindOf names err's kind for logs and metrics.
func kindOf(err error) string {
	switch {
	case errors.Is(err, protocol.ErrTooLarge):
		return KindTooLarge
	case errors.Is(err, ErrOverloaded):
		return KindOverloaded
	case errors.Is(err, ErrInternal):
		return KindInternal
	}
	if k, ok := protocol.KindOf(err); ok {
		return string(k)
	}
	return KindCanceled
}

// retryable reports whether another attempt may succeed where this one
// failed. Timeouts, overload, undecodable replies and node-internal errors are
// transient or node-specific (another queue member may answer). NoResponder
// fails at once: nobody is subscribed, and waiting a backoff for a node to
// appear would only hold the client. TooLarge never shrinks. Plugin errors
// are not retried: the handler ran and chose to fail, so a retry repeats its
// side effects to get, most likely, the same answer; a handler wanting a retry
// can return a transport-level failure instead.
func retryable(err error) bool {
	switch kindOf(err) {
	case KindTimeout, KindOverloaded, KindDecode, KindInternal:
		return true
	}
	return false
}

// deadLetterable reports whether a failure after the last attempt goes to the
// DLQ: transport failures of a request that left (or should have left) the
// gateway and may succeed on replay. Plugin errors (the handler answered),
// TooLarge (it would not fit a replay either), local overload (replaying under
// overload amplifies it) and cancellations (the client left) are not.
func deadLetterable(err error, local bool) bool {
	if local {
		return false
	}
	switch kindOf(err) {
	case KindTimeout, KindNoResponder, KindDecode, KindOverloaded, KindInternal:
		return true
	}
	return false
}
