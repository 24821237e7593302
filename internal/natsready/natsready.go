// Package natsready keeps requests out of nats.go's reconnect buffer.
//
// While a connection reconnects, nats.go keeps what is published in a
// buffer and sends it once the connection is back, however late. For a
// request whose caller has a deadline that is wrong: the caller has given
// up and answered (a 504, a WebSocket closed with 1011) and written a dead
// letter by then, yet the responder runs the request afterwards (and again
// when the dead letter is replayed), together with every other request of
// the outage at once. Callers that publish requests with a deadline call
// Await first, which waits for the connection within the deadline instead.
//
// It imports nothing from this project.
package natsready

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
)

// ErrNotSent is wrapped by Await's error when the context ended while the
// connection was down: the request was never published.
var ErrNotSent = errors.New("request not sent")

// Await returns nil once nc is connected (or draining: a publish then says
// what it can). While nc reconnects it waits for that until ctx ends, and
// then returns an error wrapping ErrNotSent and ctx's error, which names the
// connection's status ("nats connection RECONNECTING: request not sent").
// A closed connection is nats.ErrConnectionClosed. A connection that is up
// costs one status read; only one that is down pays for a status listener.
func Await(ctx context.Context, nc *nats.Conn) error {
	if nc.IsConnected() {
		return nil
	}
	ch := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(ch)
	for {
		// Read after the listener is registered: a reconnect from now on
		// wakes the wait below.
		switch st := nc.Status(); st {
		case nats.RECONNECTING, nats.DISCONNECTED, nats.CONNECTING:
			select {
			case <-ch:
			case <-ctx.Done():
				return &notSentError{status: st, cause: ctx.Err()}
			}
		case nats.CLOSED:
			return nats.ErrConnectionClosed
		default:
			return nil
		}
	}
}

// notSentError is a request whose context ended while the connection was
// down.
type notSentError struct {
	status nats.Status
	cause  error
}

func (e *notSentError) Error() string {
	return "nats connection " + e.status.String() + ": " + ErrNotSent.Error()
}

func (e *notSentError) Unwrap() []error { return []error{ErrNotSent, e.cause} }
