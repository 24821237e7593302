package ws

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// The fifo keeps order across wrap-around and growth, holds no storage
// until used, and lets a burst's storage go once it empties.
func TestFifoOrderAndStorage(t *testing.T) {
	var q fifo[int]
	if q.buf != nil {
		t.Fatal("a new fifo has storage")
	}
	next, want := 0, 0
	push := func(k int) {
		for range k {
			q.push(next)
			next++
		}
	}
	pop := func(k int) {
		for range k {
			if got := q.pop(); got != want {
				t.Fatalf("pop = %d, want %d", got, want)
			}
			want++
		}
	}
	push(3)
	pop(2) // the head moves on: the next pushes wrap around
	push(3)
	push(30) // grows twice with the head past the start
	if q.len() != 34 {
		t.Fatalf("len = %d, want 34", q.len())
	}
	pop(34)
	if q.buf != nil {
		t.Fatalf("an emptied fifo keeps %d slots, want none past %d", len(q.buf), fifoKeepCap)
	}
	push(2)
	pop(2)
	if len(q.buf) == 0 || len(q.buf) > fifoKeepCap {
		t.Fatalf("an emptied small fifo keeps %d slots, want 1..%d (no allocation per message)", len(q.buf), fifoKeepCap)
	}
	var s fifo[[]byte]
	s.push(make([]byte, 8))
	s.pop()
	for i, v := range s.buf {
		if v != nil {
			t.Fatalf("slot %d still holds a popped item", i)
		}
	}
}

// newTestConn is a connection of a real edge with no WebSocket and no
// goroutines: its queues are driven by hand.
func newTestConn(t *testing.T, cfg Config) *conn {
	t.Helper()
	s := testutil.RunNATS(t)
	e, err := New(cfg, testutil.Connect(t, s), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("new edge: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	return newConn(e, nil, nil, "test-1", 1, "fn", nil, httptest.NewRequest("GET", "/ws", nil))
}

func wantSlow(t *testing.T, c *conn) {
	t.Helper()
	if !c.isStopped() || c.code != websocket.StatusPolicyViolation || c.reason != "slow consumer" || c.cause != stopByEdge {
		t.Fatalf("stopped=%v code=%d reason=%q cause=%d, want a 1008 slow consumer stop", c.isStopped(), c.code, c.reason, c.cause)
	}
}

// The send queue takes exactly SendQueue messages (none being written)
// and closes the client with 1008 on the next one.
func TestSendQueueHoldsSendQueueMessages(t *testing.T) {
	c := newTestConn(t, Config{SendQueue: 3, SendQueueBytes: 1 << 20, PingInterval: -1})
	if c.out.buf != nil {
		t.Fatal("an unused send queue has storage")
	}
	for range 3 {
		c.send(websocket.MessageText, []byte("m"))
	}
	if c.isStopped() {
		t.Fatalf("stopped with %d of 3 messages queued", c.out.len())
	}
	c.send(websocket.MessageText, []byte("m"))
	wantSlow(t, c)
	if got := c.outBytes.Load(); got != 3 {
		t.Fatalf("outBytes = %d, want the 3 queued", got)
	}
}

// The byte bound counts queued messages; a message of any size fits an
// empty queue.
func TestSendQueueBytesBound(t *testing.T) {
	c := newTestConn(t, Config{SendQueue: 100, SendQueueBytes: 100, PingInterval: -1})
	c.send(websocket.MessageBinary, make([]byte, 500))
	if c.isStopped() {
		t.Fatal("a message larger than SendQueueBytes did not fit the empty queue")
	}
	if m, ok := c.nextOut(); !ok || len(m.data) != 500 {
		t.Fatalf("nextOut = %d bytes, %v", len(m.data), ok)
	}
	c.outBytes.Add(-500) // as writeLoop does once written
	c.send(websocket.MessageText, make([]byte, 60))
	c.send(websocket.MessageText, make([]byte, 40))
	if c.isStopped() {
		t.Fatal("stopped at exactly SendQueueBytes")
	}
	c.send(websocket.MessageText, make([]byte, 1))
	wantSlow(t, c)
}

// A close op is taken after the messages queued before it; sends after it
// are dropped.
func TestSendQueueCloseAfterSends(t *testing.T) {
	c := newTestConn(t, Config{PingInterval: -1})
	c.send(websocket.MessageText, []byte("a"))
	c.send(websocket.MessageText, []byte("b"))
	c.closeAfterSends(4000, "bye")
	c.send(websocket.MessageText, []byte("c"))
	var got []string
	for {
		m, ok := c.nextOut()
		if !ok {
			break
		}
		if m.close {
			got = append(got, "close "+m.reason)
			continue
		}
		got = append(got, string(m.data))
	}
	if want := []string{"a", "b", "close bye"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("queue = %q, want %q", got, want)
	}
	select {
	case <-c.outWake:
	default:
		t.Fatal("no wake-up pending for the writer")
	}
}

// The event queue holds EventQueue events; a full queue makes the reader
// wait until one is taken or its stop channel closes; a closed queue is
// drained before take reports the end.
func TestEventQueue(t *testing.T) {
	var q eventQueue
	q.init(2)
	if !q.put(inEvent{kind: protocol.WSOpen}, nil) || !q.put(inEvent{kind: protocol.WSText, payload: []byte("1")}, nil) {
		t.Fatal("put refused below the bound")
	}
	stopped := make(chan struct{})
	close(stopped)
	if q.put(inEvent{kind: protocol.WSText}, stopped) {
		t.Fatal("put into a full queue did not give up on stop")
	}
	put := make(chan bool)
	go func() { put <- q.put(inEvent{kind: protocol.WSText, payload: []byte("2")}, nil) }()
	select {
	case <-put:
		t.Fatal("put into a full queue did not wait")
	case <-time.After(20 * time.Millisecond):
	}
	if ev, ok := q.take(); !ok || ev.kind != protocol.WSOpen {
		t.Fatalf("take = %v %v, want open", ev.kind, ok)
	}
	if !<-put {
		t.Fatal("the waiting put failed")
	}
	var got []string
	ev, _ := q.take()
	got = append(got, string(ev.kind)+string(ev.payload))
	q.put(inEvent{kind: protocol.WSClose}, nil)
	q.close()
	for {
		ev, ok := q.take()
		if !ok {
			break
		}
		got = append(got, string(ev.kind)+string(ev.payload))
	}
	if want := "text1 text2 close"; len(got) != 3 || got[0]+" "+got[1]+" "+got[2] != want {
		t.Fatalf("taken %q, want %s", got, want)
	}
}
