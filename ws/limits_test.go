package ws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

// A connection is in at most MaxRooms rooms: each room is a NATS
// subscription, and a function that joins rooms on a client's request must
// not let one client make the edge hold any number of them. Joins beyond
// the bound are skipped; a leave frees a place.
func TestMaxRoomsPerConnection(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "rooms", false, func(ev *event) answer {
		if ev.kind() != protocol.WSText {
			return ok()
		}
		cmd, room, _ := strings.Cut(string(ev.inv.WS.Payload), ":")
		op := protocol.Op{Code: protocol.OpWSJoinRoom, Key: room}
		switch cmd {
		case "leave":
			op.Code = protocol.OpWSLeaveRoom
		case "say":
			op = protocol.Op{Code: protocol.OpWSBroadcastText, Key: room, Value: ev.inv.WS.Payload}
		}
		return ok(op, protocol.Op{Code: protocol.OpWSSendText, Value: ev.inv.WS.Payload})
	})
	env := startEdge(t, s, ws.Config{MaxRooms: 2}, "rooms")
	cl := dial(t, env.url("")).read()
	for _, m := range []string{"join:a", "join:b", "join:c", "join:a"} {
		cl.send(m)
		cl.waitFor(m)
	}
	waitStats(t, env, ws.Stats{Connections: 1, Rooms: 2, Members: 2})
	cl.send("leave:a")
	cl.waitFor("leave:a")
	cl.send("join:c")
	cl.waitFor("join:c")
	waitStats(t, env, ws.Stats{Connections: 1, Rooms: 2, Members: 2})
	// The member of c gets c's broadcasts: the second join:c went through.
	other := dial(t, env.url("")).read()
	other.send("say:c")
	cl.waitFor("say:c")
	if got := env.edge.Config().MaxRooms; got != 2 {
		t.Fatalf("Config().MaxRooms = %d, want 2", got)
	}
}

// A client that stops reading is closed with 1008 once its queued messages
// pass SendQueueBytes, long before SendQueue messages of up to max_payload
// each pile up. A message larger than the bound still reaches a client
// that reads: it always fits an empty queue.
func TestSendQueueBytesClosesSlowClient(t *testing.T) {
	s := testutil.RunNATS(t)
	const limit = 64 << 10
	respond(t, s, "history", false, func(ev *event) answer {
		if ev.kind() != protocol.WSText {
			return ok()
		}
		size := 16 << 10
		if string(ev.inv.WS.Payload) == "big" {
			size = 2 * limit
		}
		return ok(protocol.Op{Code: protocol.OpWSSendText, Value: []byte(strings.Repeat("h", size))})
	})
	env := startEdgeWith(t, s, ws.Config{SendQueue: 1000, SendQueueBytes: limit, PingInterval: -1, WriteTimeout: 30 * time.Second}, "history",
		func(srv *httptest.Server) { srv.Listener = &smallBufferListener{Listener: srv.Listener} })
	slow := dialSmallBuffer(t, env.url(""))
	reader := dial(t, env.url("")).read()
	reader.send("big")
	reader.waitFor(strings.Repeat("h", 2*limit))

	const n = 40 // 640 KiB: far over the bytes, far under the 1000 messages
	for range n {
		slow.send("more")
	}
	expectCutOffAsSlow(t, env, slow, n)
	waitStats(t, env, ws.Stats{Connections: 1})
}

// Text that is not UTF-8 closes the client with 1007 (RFC 6455 8.1) and is
// not passed to the function: relayed to a room it would make every
// browser there fail its connection.
func TestInvalidUTF8Closes1007(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "relay", false, relay)
	env := startEdge(t, s, ws.Config{}, "relay")
	member := dial(t, env.url("room=r")).read()
	bad := dial(t, env.url("room=r")).read()
	waitStats(t, env, ws.Stats{Connections: 2, Rooms: 1, Members: 2})

	if err := bad.c.Write(context.Background(), websocket.MessageText, []byte("caf\xe9")); err != nil {
		t.Fatal(err)
	}
	if code, reason := bad.waitClosed(); code != websocket.StatusInvalidFramePayloadData || reason != "invalid UTF-8" {
		t.Fatalf("close = %d %q, want 1007 invalid UTF-8", code, reason)
	}
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		for _, ev := range rs.seen(protocol.WSClose, "") {
			if ev.inv.WS.CloseCode == 1007 {
				return nil
			}
		}
		return errors.New("no close event with 1007")
	})
	for _, ev := range rs.seen(protocol.WSText, "") {
		t.Errorf("text event %q reached the function", ev.inv.WS.Payload)
	}
	member.send("ünïcode ok")
	member.waitFor("ünïcode ok")
	if got := member.texts(); len(got) != 1 {
		t.Fatalf("member got %q, want only its own message", got)
	}
}

// An open event waiting for a new function's first node (WithFirstNodeWait)
// is given up as soon as its connection ends: Close does not wait out the
// first-node wait, and a client gone meanwhile is released at once. Neither
// is dead-lettered: nobody waits for the event.
func TestFirstNodeWaitEndsWithTheConnection(t *testing.T) {
	s := testutil.RunNATS(t)
	start := func(t *testing.T) *edgeEnv {
		return startEdgeWith(t, s, ws.Config{}, "fresh", func(srv *httptest.Server) {
			h := srv.Config.Handler
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r.WithContext(ws.WithFirstNodeWait(r.Context(), 10*time.Second)))
			})
		})
	}
	// waiting returns once the open event has found no responder twice,
	// so it is in the first-node wait.
	waiting := func(t *testing.T, env *edgeEnv) {
		t.Helper()
		base := env.nc.Stats().OutMsgs
		testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
			if n := env.nc.Stats().OutMsgs - base; n < 2 {
				return fmt.Errorf("%d open attempts", n)
			}
			return nil
		})
	}

	t.Run("edge close", func(t *testing.T) {
		env := start(t)
		cl := dial(t, env.url("")).read()
		waiting(t, env)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := env.edge.Close(ctx); err != nil {
			t.Fatalf("close: %v (the open event's first-node wait held it)", err)
		}
		if code, _ := cl.waitClosed(); code != websocket.StatusGoingAway {
			t.Fatalf("client close = %d, want 1001", code)
		}
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_dead_letters_total", nil); got != 0 {
			t.Errorf("dead letters = %v, want 0", got)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		env := start(t)
		cl := dial(t, env.url(""))
		waiting(t, env)
		_ = cl.c.CloseNow()
		testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() error {
			if st := env.edge.Stats(); st.Connections != 0 {
				return fmt.Errorf("%d connections; the first-node wait holds the one that left", st.Connections)
			}
			return nil
		})
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_dead_letters_total", nil); got != 0 {
			t.Errorf("dead letters = %v, want 0", got)
		}
	})
}
