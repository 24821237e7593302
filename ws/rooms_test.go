package ws_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

// Clients on two edges in one room all get each broadcast exactly once:
// each edge subscribes to the room once and delivers to its own members,
// the publishing edge included.
func TestRoomBroadcastTwoEdgesExactlyOnce(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "relay", false, relay)
	a := startEdge(t, s, ws.Config{EdgeID: "a"}, "relay")
	b := startEdge(t, s, ws.Config{EdgeID: "b"}, "relay")

	var members []*client
	for _, env := range []*edgeEnv{a, b, a, b, a, b} {
		members = append(members, dial(t, env.url("room=r1")).read())
	}
	other := dial(t, b.url("room=r2")).read()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		sa, sb := a.edge.Stats(), b.edge.Stats()
		if sa.Members != 3 || sb.Members != 4 || sa.Rooms != 1 || sb.Rooms != 2 {
			return fmt.Errorf("stats a %+v b %+v, want 3 members in 1 room and 4 in 2", sa, sb)
		}
		return nil
	})

	const perClient = 10
	for k := range perClient {
		for i, cl := range members {
			cl.send(fmt.Sprintf("m-%d-%d", i, k))
		}
	}
	members[0].send("x:not to the sender")
	if err := members[1].c.Write(context.Background(), websocket.MessageBinary, []byte{0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	// A sentinel from each member: once a client has every member's, it
	// has everything those members sent before it, and a duplicate would
	// have arrived by then too. Only one connection's events are ordered
	// (the edge runs each connection's events in order, its broadcasts go
	// out on one NATS connection, each edge's room subscription and each
	// writer deliver in order); another member's last message may still be
	// on its way when someone else's sentinel arrives.
	for i, cl := range members {
		cl.send(fmt.Sprintf("end-%d", i))
	}
	other.send("end-r2")
	for _, cl := range members {
		for i := range members {
			cl.waitFor(fmt.Sprintf("end-%d", i))
		}
	}
	other.waitFor("end-r2")

	for i, cl := range members {
		count := map[string]int{}
		binary := 0
		for _, m := range cl.received() {
			count[m.data]++
			if m.typ == websocket.MessageBinary {
				binary++
			}
		}
		for j := range members {
			for k := range perClient {
				if n := count[fmt.Sprintf("m-%d-%d", j, k)]; n != 1 {
					t.Errorf("client %d got m-%d-%d %d times, want once", i, j, k, n)
				}
			}
		}
		wantExcluded := 1
		if i == 0 {
			wantExcluded = 0
		}
		if n := count["x:not to the sender"]; n != wantExcluded {
			t.Errorf("client %d got the exclude-sender broadcast %d times, want %d", i, n, wantExcluded)
		}
		if binary != 1 || count["\xff\x00"] != 1 {
			t.Errorf("client %d got %d binary messages, want the one binary broadcast", i, binary)
		}
		// Besides the members' messages: the exclude-sender broadcast, the
		// binary one and the sentinels.
		if want := len(members)*perClient + wantExcluded + 1 + len(members); len(cl.received()) != want {
			t.Errorf("client %d got %d messages in all, want %d", i, len(cl.received()), want)
		}
	}
	if got := other.texts(); len(got) != 1 {
		t.Errorf("member of another room got %v, want only its own sentinel", got)
	}
	want := float64(len(members)*perClient + 2 + len(members))
	if got := testutil.MetricSum(t, a.reg, "nylon_ws_broadcasts_total", nil) + testutil.MetricSum(t, b.reg, "nylon_ws_broadcasts_total", nil); got != want+1 {
		t.Errorf("broadcasts published = %v, want %v", got, want+1)
	}
}

// Joins and leaves keep one subscription per room with local members; the
// last member's leave or close releases it.
func TestRoomMembershipAndSubscriptions(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "rooms", false, func(ev *event) answer {
		switch ev.kind() {
		case protocol.WSOpen:
			var ops []protocol.Op
			for _, r := range strings.Split(query(ev, "rooms"), ",") {
				ops = append(ops, protocol.Op{Code: protocol.OpWSJoinRoom, Key: r})
			}
			return ok(ops...)
		case protocol.WSText:
			cmd, room, _ := strings.Cut(string(ev.inv.WS.Payload), ":")
			code := protocol.OpWSJoinRoom
			if cmd == "leave" {
				code = protocol.OpWSLeaveRoom
			}
			return ok(protocol.Op{Code: code, Key: room}, protocol.Op{Code: protocol.OpWSSendText, Value: ev.inv.WS.Payload})
		}
		return ok()
	})
	env := startEdge(t, s, ws.Config{}, "rooms")
	// The first request creates nats.go's shared reply subscription; count
	// room subscriptions on top of it.
	probe := dial(t, env.url("rooms=probe")).read()
	waitStats(t, env, ws.Stats{Connections: 1, Rooms: 1, Members: 1})
	base := env.nc.NumSubscriptions() - 1
	_ = probe.c.Close(websocket.StatusNormalClosure, "")
	waitStats(t, env, ws.Stats{})
	if n := env.nc.NumSubscriptions(); n != base {
		t.Fatalf("subscriptions = %d after the probe left, want %d", n, base)
	}
	waitSubs := func(want int) {
		t.Helper()
		testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
			if n := env.nc.NumSubscriptions() - base; n != want {
				return fmt.Errorf("%d room subscriptions, want %d", n, want)
			}
			return nil
		})
	}

	c1 := dial(t, env.url("rooms=a,b")).read()
	waitStats(t, env, ws.Stats{Connections: 1, Rooms: 2, Members: 2})
	waitSubs(2)
	c2 := dial(t, env.url("rooms=a")).read()
	waitStats(t, env, ws.Stats{Connections: 2, Rooms: 2, Members: 3})
	waitSubs(2)

	c1.send("join:a") // already a member: no change
	c1.waitFor("join:a")
	waitStats(t, env, ws.Stats{Connections: 2, Rooms: 2, Members: 3})
	c1.send("leave:a") // c2 is still in a
	c1.waitFor("leave:a")
	waitStats(t, env, ws.Stats{Connections: 2, Rooms: 2, Members: 2})
	c1.send("join:c")
	c1.waitFor("join:c")
	waitStats(t, env, ws.Stats{Connections: 2, Rooms: 3, Members: 3})
	waitSubs(3)

	_ = c2.c.Close(websocket.StatusNormalClosure, "") // a is left empty
	waitStats(t, env, ws.Stats{Connections: 1, Rooms: 2, Members: 2})
	waitSubs(2)
	c1.send("leave:b")
	c1.waitFor("leave:b")
	waitStats(t, env, ws.Stats{Connections: 1, Rooms: 1, Members: 1})
	waitSubs(1)
	_ = c1.c.Close(websocket.StatusNormalClosure, "")
	waitStats(t, env, ws.Stats{})
	waitSubs(0)
	if g := testutil.MetricSum(t, env.reg, "nylon_ws_rooms", nil); g != 0 {
		t.Fatalf("nylon_ws_rooms = %v, want 0", g)
	}
}

func waitStats(t *testing.T, env *edgeEnv, want ws.Stats) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := env.edge.Stats(); got != want {
			return fmt.Errorf("stats %+v, want %+v", got, want)
		}
		return nil
	})
}

// A client that does not read fills its send queue and is closed with 1008;
// the others in the room keep receiving every broadcast promptly.
func TestSlowClientClosedWithoutStallingRoom(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "relay", false, relay)
	// Small socket buffers on both ends of the slow client's connection
	// (it dials first), so that not reading blocks its writer after a few
	// KiB instead of several MiB.
	env := startEdgeWith(t, s, ws.Config{SendQueue: 32, PingInterval: -1, WriteTimeout: 30 * time.Second}, "relay", func(srv *httptest.Server) {
		srv.Listener = &smallBufferListener{Listener: srv.Listener}
	})
	slow := dialSmallBuffer(t, env.url("room=busy"))
	fast1 := dial(t, env.url("room=busy")).read()
	fast2 := dial(t, env.url("room=busy")).read()
	waitStats(t, env, ws.Stats{Connections: 3, Rooms: 1, Members: 3})

	const n = 200
	payload := strings.Repeat("p", 4096)
	start := time.Now()
	// Paced: each broadcast is sent once the fast members have the one
	// before, so they never fall behind themselves (on a loaded machine a
	// burst could fill their queues too). Were delivery blocked by the slow
	// member, a waitFor below would time out.
	for i := range n {
		m := fmt.Sprintf("%04d%s", i, payload)
		fast1.send(m)
		fast1.waitFor(m)
		fast2.waitFor(m)
	}
	elapsed := time.Since(start)
	for _, cl := range []*client{fast1, fast2} {
		if got := len(cl.received()); got != n {
			t.Errorf("fast client got %d broadcasts, want %d", got, n)
		}
	}
	// Had the slow client's blocked writes held up the room, this would
	// take the 30s write timeout.
	if elapsed > 10*time.Second {
		t.Errorf("fast clients took %v for %d broadcasts", elapsed, n)
	}
	expectCutOffAsSlow(t, env, slow, n)
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		for _, ev := range rs.seen(protocol.WSClose, "") {
			if ev.inv.WS.CloseCode == 1008 {
				return nil
			}
		}
		return fmt.Errorf("no close event with 1008")
	})
	waitStats(t, env, ws.Stats{Connections: 2, Rooms: 1, Members: 2})
}

// smallBufferListener shrinks the send buffer of the first accepted
// connection.
type smallBufferListener struct {
	net.Listener
	once sync.Once
}

func (l *smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.once.Do(func() {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(4096)
		}
	})
	return c, nil
}

// dialSmallBuffer dials with a small socket receive buffer. Paired with
// smallBufferListener on the server, a client that does not read blocks
// the edge's writes after a few KiB.
func dialSmallBuffer(t *testing.T, u string) *client {
	t.Helper()
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	cl, err := dialErr(t, u, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}
