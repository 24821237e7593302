package ws_test

import (
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

// While the edge's connection to NATS is down, an event waits for it
// (within EventTimeout) instead of going into nats.go's reconnect buffer.
// Buffered, it reached the function once the connection came back, after
// its client had been closed with 1011 and its dead letter written: the
// function ran an event nobody waited for, and a replay ran it again.
func TestEventsAreNotSentIntoAnOutage(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "fn", false, echo)
	proxy := testutil.StartTCPProxy(t, s.Addr().String())
	nc, err := nats.Connect("nats://"+proxy.Addr(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	env := startEdgeOn(t, nc, ws.Config{EventTimeout: 300 * time.Millisecond}, "fn", nil)

	cl := dial(t, env.url("")).read()
	cl.send("before")
	cl.waitFor("before")

	proxy.Cut()
	testutil.Eventually(t, 5*time.Second, 2*time.Millisecond, func() error {
		if nc.IsConnected() {
			return errors.New("the edge's connection is still up")
		}
		return nil
	})
	cl.send("during")
	if code, _ := cl.waitClosed(); code != websocket.StatusInternalError {
		t.Fatalf("client closed with %v during the outage, want 1011 (the event timed out)", code)
	}

	proxy.Restore(t)
	testutil.Eventually(t, 5*time.Second, 2*time.Millisecond, func() error {
		if !nc.IsConnected() {
			return errors.New("the edge has not reconnected")
		}
		return nil
	})
	// A round trip after the reconnect: anything the reconnect flushed
	// reached the responder before it.
	after := dial(t, env.url("")).read()
	after.send("after")
	after.waitFor("after")
	for _, ev := range rs.seen(protocol.WSText, "") {
		if string(ev.inv.WS.Payload) == "during" {
			t.Fatal("the function got the event that timed out during the outage, after the connection came back")
		}
	}
}
