package ws

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
)

// awaitConnected returns nil once nc is connected (or draining: a publish
// then says what it can), and otherwise waits for that within ctx. While
// nc reconnects, nats.go keeps a request in its reconnect buffer and sends
// it once the connection is back, however late: the node would run an
// event whose client had been closed with 1011 and whose dead letter had
// been written (so a replay ran it twice), and every event of the outage
// at once. When ctx ends first the error wraps ctx's (a Timeout for the
// caller) and says the event was never sent. Only a connection that is
// down pays for the status listener.
func awaitConnected(ctx context.Context, nc *nats.Conn) error {
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
				return fmt.Errorf("nats connection %s, event not sent: %w", st, ctx.Err())
			}
		case nats.CLOSED:
			return nats.ErrConnectionClosed
		default:
			return nil
		}
	}
}
