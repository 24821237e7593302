package ws_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

const prefix = "nylon.dev"

// event is what a test responder saw: the request envelope, its
// invocation and the NATS headers.
type event struct {
	req    protocol.PluginRequest
	inv    protocol.Invocation
	header nats.Header
}

func (e *event) kind() protocol.WSEventKind { return e.inv.WS.Kind }
func (e *event) conn() string               { return e.inv.WS.ConnectionID }

// answer is a test responder's reply: a PluginResponse with ops, or a NATS
// micro error when serviceErr is set, or nothing at all when silent.
type answer struct {
	action     protocol.Action
	ops        []protocol.Op
	errText    string
	serviceErr string // micro error code, e.g. "500"
	silent     bool
	strayID    bool // the reply carries another request's request_id
}

func ok(ops ...protocol.Op) answer { return answer{action: protocol.ActionNext, ops: ops} }

// responder stands in for platform nodes: a NATS micro service with a
// queue group on the function's events subject that decodes each request
// and invocation and answers with ops, like a node running the function.
type responder struct {
	mu     sync.Mutex
	events []*event
}

type handlerFunc func(ev *event) answer

// respond starts a responder for function on a connection of its own.
// With async set every request is handled on its own goroutine (a node
// with many workers); otherwise one at a time.
func respond(t testing.TB, s *server.Server, function string, async bool, h handlerFunc) *responder {
	t.Helper()
	nc := testutil.Connect(t, s)
	rs := &responder{}
	svc, err := micro.AddService(nc, micro.Config{Name: function, Version: "0.0.1", QueueGroup: function})
	if err != nil {
		t.Fatalf("add service %s: %v", function, err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	handle := func(r micro.Request) {
		ev := &event{header: nats.Header(r.Headers())}
		if err := protocol.DecodeRequest(r.Data(), &ev.req); err != nil {
			_ = r.Error("400", err.Error(), nil)
			return
		}
		if err := protocol.DecodeInvocation(ev.req.Data, &ev.inv); err != nil {
			_ = r.Error("400", err.Error(), nil)
			return
		}
		rs.mu.Lock()
		rs.events = append(rs.events, ev)
		rs.mu.Unlock()
		a := h(ev)
		switch {
		case a.silent:
			return
		case a.serviceErr != "":
			_ = r.Error(a.serviceErr, "handler exploded", nil)
			return
		}
		resp := protocol.PluginResponse{
			Version:   protocol.Version,
			RequestID: ev.req.RequestID,
			SessionID: ev.req.SessionID,
			Action:    a.action,
			Data:      protocol.AppendOps(nil, a.ops),
			Error:     a.errText,
		}
		if a.strayID {
			resp.RequestID = protocol.NewRequestID()
		}
		_ = r.Respond(resp.AppendMsgpack(nil), micro.WithHeaders(micro.Headers{
			protocol.HeaderTraceparent: {ev.header.Get(protocol.HeaderTraceparent)},
		}))
	}
	endpoint := micro.HandlerFunc(handle)
	if async {
		endpoint = func(r micro.Request) { go handle(r) }
	}
	if err := svc.AddEndpoint("events", endpoint, micro.WithEndpointSubject(protocol.EventsSubject(prefix, function))); err != nil {
		t.Fatalf("add endpoint %s: %v", function, err)
	}
	return rs
}

// seen returns the events received so far matching kind ("" for all) and
// connection id ("" for all).
func (rs *responder) seen(kind protocol.WSEventKind, conn string) []*event {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []*event
	for _, ev := range rs.events {
		if (kind == "" || ev.kind() == kind) && (conn == "" || ev.conn() == conn) {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent polls until an event of kind for conn has arrived.
func (rs *responder) waitEvent(t testing.TB, kind protocol.WSEventKind, conn string) *event {
	t.Helper()
	var got *event
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if evs := rs.seen(kind, conn); len(evs) > 0 {
			got = evs[0]
			return nil
		}
		return fmt.Errorf("no %s event for connection %q yet", kind, conn)
	})
	return got
}

// echo answers every text or binary message with the same message.
func echo(ev *event) answer {
	switch ev.kind() {
	case protocol.WSText:
		return ok(protocol.Op{Code: protocol.OpWSSendText, Value: ev.inv.WS.Payload})
	case protocol.WSBinary:
		return ok(protocol.Op{Code: protocol.OpWSSendBinary, Value: ev.inv.WS.Payload})
	}
	return ok()
}

// query returns a query parameter of the upgrade request.
func query(ev *event, name string) string {
	q, _ := url.ParseQuery(ev.inv.Request.Query)
	return q.Get(name)
}

// relay joins the room of the query's "room" on open, broadcasts every
// message to it ("x:" prefix: excluding the sender; binary messages as
// binary) and leaves on close.
func relay(ev *event) answer {
	room := query(ev, "room")
	switch ev.kind() {
	case protocol.WSOpen:
		return ok(protocol.Op{Code: protocol.OpWSJoinRoom, Key: room})
	case protocol.WSText:
		op := protocol.Op{Code: protocol.OpWSBroadcastText, Key: room, Value: ev.inv.WS.Payload}
		if strings.HasPrefix(string(op.Value), "x:") {
			op.Num = protocol.BroadcastExcludeSender
		}
		return ok(op)
	case protocol.WSBinary:
		return ok(protocol.Op{Code: protocol.OpWSBroadcastBinary, Key: room, Value: ev.inv.WS.Payload})
	case protocol.WSClose:
		return ok(protocol.Op{Code: protocol.OpWSLeaveRoom, Key: room})
	}
	return ok()
}

// edgeEnv is one edge on its own NATS connection behind an httptest server
// that routes /ws to function.
type edgeEnv struct {
	edge *ws.Edge
	nc   *nats.Conn
	reg  *prometheus.Registry
	srv  *httptest.Server
	// closeErr is the error the cleanup's Close is expected to return (the
	// first Close's outcome, when a test already closed with a deadline).
	closeErr error
}

func (e *edgeEnv) url(query string) string {
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

func startEdge(t testing.TB, s *server.Server, cfg ws.Config, function string) *edgeEnv {
	t.Helper()
	return startEdgeWith(t, s, cfg, function, nil)
}

// startEdgeWith is startEdge with a hook to adjust the unstarted server
// (e.g. its listener) and options after the test's registry and logger.
func startEdgeWith(t testing.TB, s *server.Server, cfg ws.Config, function string, adjust func(*httptest.Server), opts ...ws.Option) *edgeEnv {
	t.Helper()
	return startEdgeOn(t, testutil.Connect(t, s), cfg, function, adjust, opts...)
}

// startEdgeOn is startEdgeWith on a connection the test made.
func startEdgeOn(t testing.TB, nc *nats.Conn, cfg ws.Config, function string, adjust func(*httptest.Server), opts ...ws.Option) *edgeEnv {
	t.Helper()
	env := &edgeEnv{nc: nc, reg: prometheus.NewRegistry()}
	edge, err := ws.New(cfg, env.nc, append([]ws.Option{ws.WithRegistry(env.reg), ws.WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatalf("new edge: %v", err)
	}
	env.edge = edge
	mux := http.NewServeMux()
	mux.Handle("/ws", edge.Handler(function, map[string]string{"greeting": "hi", "color": "blue"}))
	env.srv = httptest.NewUnstartedServer(mux)
	if adjust != nil {
		adjust(env.srv)
	}
	env.srv.Start()
	t.Cleanup(env.srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := edge.Close(ctx); !errors.Is(err, env.closeErr) {
			t.Errorf("close edge: %v", err)
		}
	})
	return env
}

// client is a test WebSocket client whose reader records every message.
type client struct {
	t    testing.TB
	c    *websocket.Conn
	mu   sync.Mutex
	msgs []msg
	done chan struct{}
	err  error // the read error that ended the reader, after done
}

type msg struct {
	typ  websocket.MessageType
	data string
}

func dial(t testing.TB, u string) *client {
	t.Helper()
	c, err := dialErr(t, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	return c
}

func dialErr(t testing.TB, u string, opts *websocket.DialOptions) (*client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (status %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c.SetReadLimit(-1)
	cl := &client{t: t, c: c, done: make(chan struct{})}
	t.Cleanup(func() { _ = c.CloseNow() })
	return cl, nil
}

// read starts the client's reader. Clients that must not read (slow or dead
// peers) simply do not call it.
func (cl *client) read() *client {
	go func() {
		defer close(cl.done)
		for {
			typ, b, err := cl.c.Read(context.Background())
			if err != nil {
				cl.err = err
				return
			}
			cl.mu.Lock()
			cl.msgs = append(cl.msgs, msg{typ, string(b)})
			cl.mu.Unlock()
		}
	}()
	return cl
}

func (cl *client) received() []msg {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]msg(nil), cl.msgs...)
}

func (cl *client) texts() []string {
	var out []string
	for _, m := range cl.received() {
		out = append(out, m.data)
	}
	return out
}

func (cl *client) send(s string) {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		cl.t.Fatalf("client write %q: %v", s, err)
	}
}

// waitFor polls until the client has received s.
func (cl *client) waitFor(s string) {
	cl.t.Helper()
	testutil.Eventually(cl.t, 5*time.Second, 2*time.Millisecond, func() error {
		for _, m := range cl.received() {
			if m.data == s {
				return nil
			}
		}
		short := s
		if len(short) > 40 {
			short = short[:40] + "..."
		}
		return fmt.Errorf("message %q not received; have %d messages", short, len(cl.received()))
	})
}

// waitClosed waits for the reader to end and returns the close status the
// server sent (-1 when the connection ended without one).
func (cl *client) waitClosed() (websocket.StatusCode, string) {
	cl.t.Helper()
	select {
	case <-cl.done:
	case <-time.After(10 * time.Second):
		cl.t.Fatalf("client still open after 10s")
	}
	var ce websocket.CloseError
	if errors.As(cl.err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, ""
}

// expectCutOffAsSlow waits for the edge to count one slow client, then
// lets slow, which has not read yet, read what was already on the wire: it
// must end with 1008 "slow consumer" before it got all n messages sent to it.
func expectCutOffAsSlow(t testing.TB, env *edgeEnv, slow *client, n int) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_slow_closed_total", nil); got != 1 {
			return fmt.Errorf("slow closed = %v, want 1", got)
		}
		return nil
	})
	slow.read()
	if code, reason := slow.waitClosed(); code != websocket.StatusPolicyViolation || reason != "slow consumer" {
		t.Fatalf("slow client close = %d %q, want 1008 slow consumer", code, reason)
	}
	if got := len(slow.received()); got >= n {
		t.Errorf("slow client got all %d messages; it should have been cut off", got)
	}
}

// testLogger logs warnings and errors through t.Log until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// subscribeSync subscribes to subject on a connection of its own.
func subscribeSync(t testing.TB, s *server.Server, subject string) *nats.Subscription {
	t.Helper()
	nc := testutil.Connect(t, s)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return sub
}

func nextMsg(t testing.TB, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no message on %s: %v", sub.Subject, err)
	}
	return m
}
