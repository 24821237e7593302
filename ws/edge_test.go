package ws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

func TestNewValidatesConfig(t *testing.T) {
	s := testutil.RunNATS(t)
	nc := testutil.Connect(t, s)
	for _, tc := range []struct {
		name string
		cfg  ws.Config
	}{
		{"prefix wildcard", ws.Config{SubjectPrefix: "nylon.*"}},
		{"edge id with dot", ws.Config{EdgeID: "a.b"}},
		{"negative timeout", ws.Config{EventTimeout: -time.Second}},
		{"negative queue", ws.Config{SendQueue: -1}},
		{"retries below -1", ws.Config{EventRetries: -2}},
		{"negative send queue bytes", ws.Config{SendQueueBytes: -1}},
		{"negative max rooms", ws.Config{MaxRooms: -1}},
		{"origin pattern path.Match cannot parse", ws.Config{OriginPatterns: []string{"app.example.com", "[a-"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ws.New(tc.cfg, nc); !errors.Is(err, ws.ErrInvalidConfig) {
				t.Fatalf("New: err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := ws.New(ws.Config{}, nil); !errors.Is(err, ws.ErrInvalidConfig) {
		t.Fatalf("New with nil conn: err = %v, want ErrInvalidConfig", err)
	}
	e, err := ws.New(ws.Config{}, nc)
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	cfg := e.Config()
	if cfg.SubjectPrefix != "nylon.dev" || cfg.EventTimeout != ws.DefaultEventTimeout || len(e.ID()) != 8 {
		t.Fatalf("defaults not applied: prefix %q timeout %v id %q", cfg.SubjectPrefix, cfg.EventTimeout, e.ID())
	}
	// Twice max_payload (the test server's is 8 MiB) when over 4 MiB: one
	// event reply's sends always fit.
	if want := max(ws.DefaultSendQueueBytes, 2*nc.MaxPayload()); cfg.MaxRooms != ws.DefaultMaxRooms || cfg.SendQueueBytes != want {
		t.Fatalf("defaults not applied: max rooms %d send queue bytes %d, want %d", cfg.MaxRooms, cfg.SendQueueBytes, want)
	}
}

// An event carries the upgrade request, the config, the connection id and
// the trace headers; the reply's ops reach the client; the client's close
// code and reason reach the close event.
func TestEventsCarryRequestAndClose(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "echo", false, echo)
	env := startEdge(t, s, ws.Config{EdgeID: "edge1"}, "echo")

	cl, err := dialErr(t, env.url("room=a&name=bob"), &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Test": {"yes"}, "Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cl.read()
	cl.send("hello")
	cl.waitFor("hello")

	open := rs.waitEvent(t, protocol.WSOpen, "")
	id := open.conn()
	if !strings.HasPrefix(id, "edge1-") {
		t.Errorf("connection id %q does not start with the edge id", id)
	}
	if open.req.Phase != protocol.PhaseEvent || open.req.Method != protocol.EventWSOpen || open.req.Version != protocol.Version {
		t.Errorf("open envelope: phase %v method %d version %d", open.req.Phase, open.req.Method, open.req.Version)
	}
	req := open.inv.Request
	if req.Method != "GET" || req.Path != "/ws" || req.Query != "room=a&name=bob" || req.ClientIP != "127.0.0.1" || req.Host == "" {
		t.Errorf("upgrade request not carried: %+v", req)
	}
	if v, _ := protocol.HeaderValue(req.Headers, "x-test"); v != "yes" {
		t.Errorf("header X-Test = %q, want yes", v)
	}
	if g, _ := protocol.Lookup(open.inv.Config, "greeting"); g != "hi" || open.inv.Config[0].Key != "color" {
		t.Errorf("config not carried in key order: %+v", open.inv.Config)
	}
	if env := open.header.Get(protocol.HeaderEnv); env != "dev" {
		t.Errorf("Nylon-Env header = %q", env)
	}
	if got := open.header.Values(protocol.HeaderTimeout); len(got) != 1 || got[0] != "5000" {
		t.Errorf("Nylon-Timeout-Ms header = %q, want the default event timeout [5000]", got)
	}
	tp := open.header.Get(protocol.HeaderTraceparent)
	if !strings.HasPrefix(tp, "00-0af7651916cd43dd8448eb211c80319c-") || strings.Contains(tp, "b7ad6b7169203331") {
		t.Errorf("traceparent %q: want the client's trace id with a new span id", tp)
	}

	text := rs.waitEvent(t, protocol.WSText, id)
	if string(text.inv.WS.Payload) != "hello" || text.req.Method != protocol.EventWSText {
		t.Errorf("text event: payload %q method %d", text.inv.WS.Payload, text.req.Method)
	}
	if text.req.SessionID != open.req.SessionID || text.req.RequestID == open.req.RequestID {
		t.Errorf("session id should stay and request id change: %d/%d %v/%v", open.req.SessionID, text.req.SessionID, open.req.RequestID, text.req.RequestID)
	}

	if err := cl.c.Close(4001, "bye"); err != nil {
		t.Fatalf("client close: %v", err)
	}
	closeEv := rs.waitEvent(t, protocol.WSClose, id)
	if closeEv.inv.WS.CloseCode != 4001 || closeEv.inv.WS.CloseReason != "bye" {
		t.Errorf("close event: code %d reason %q, want 4001 bye", closeEv.inv.WS.CloseCode, closeEv.inv.WS.CloseReason)
	}
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := env.edge.Stats().Connections; n != 0 {
			return fmt.Errorf("%d connections open", n)
		}
		return nil
	})
}

// Route parameters reach the invocation, from WithParams or from a chi
// router.
func TestRouteParams(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "echo", false, echo)
	env := startEdge(t, s, ws.Config{}, "echo")
	r := chi.NewRouter()
	r.Get("/chi/{room}", env.edge.Handler("echo", nil).ServeHTTP)
	r.Get("/ctx", func(w http.ResponseWriter, req *http.Request) {
		ctx := ws.WithParams(req.Context(), map[string]string{"b": "2", "a": "1"})
		env.edge.ServeFunction(w, req.WithContext(ctx), "echo", nil)
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	base := "ws" + strings.TrimPrefix(srv.URL, "http")
	for path, want := range map[string]string{"/chi/den": "[{room den}]", "/ctx": "[{a 1} {b 2}]"} {
		cl := dial(t, base+path).read()
		cl.send(path)
		cl.waitFor(path)
		var got string
		for _, ev := range rs.seen(protocol.WSOpen, "") {
			if ev.inv.Request.Path == path {
				got = fmt.Sprint(ev.inv.Request.Params)
			}
		}
		if got != want {
			t.Errorf("%s: params %s, want %s", path, got, want)
		}
	}
}

// Ops apply in order: sends, then a close with the op's code and reason.
func TestOpsApplyInOrder(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "ops", false, func(ev *event) answer {
		if ev.kind() != protocol.WSText {
			return ok()
		}
		return ok(
			protocol.Op{Code: protocol.OpWSSendText, Value: []byte("one")},
			protocol.Op{Code: protocol.OpWSSendBinary, Value: []byte{0, 1, 2}},
			protocol.Op{Code: protocol.OpWSSendText, Value: []byte("three")},
			protocol.Op{Code: protocol.OpWSClose, Num: 4000, Value: []byte("done")},
			protocol.Op{Code: protocol.OpWSSendText, Value: []byte("after close")},
		)
	})
	env := startEdge(t, s, ws.Config{}, "ops")
	cl := dial(t, env.url("")).read()
	cl.send("go")
	code, reason := cl.waitClosed()
	if code != 4000 || reason != "done" {
		t.Fatalf("close = %d %q, want 4000 done", code, reason)
	}
	got := cl.received()
	want := []msg{{websocket.MessageText, "one"}, {websocket.MessageBinary, "\x00\x01\x02"}, {websocket.MessageText, "three"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("received %v, want %v", got, want)
	}
	id := rs.seen(protocol.WSOpen, "")[0].conn()
	if ev := rs.waitEvent(t, protocol.WSClose, id); ev.inv.WS.CloseCode != 4000 {
		t.Fatalf("close event code %d, want 4000", ev.inv.WS.CloseCode)
	}
}

// One event per connection is in flight, in order; different connections
// proceed concurrently (a handler blocked for one connection does not hold
// up another's events).
func TestEventsOrderedPerConnectionConcurrentAcross(t *testing.T) {
	s := testutil.RunNATS(t)
	var (
		mu       sync.Mutex
		inflight = map[string]int{}
		maxIn    int
		order    = map[string][]string{}
	)
	release := make(chan struct{})
	rs := respond(t, s, "order", true, func(ev *event) answer {
		id := ev.conn()
		mu.Lock()
		inflight[id]++
		maxIn = max(maxIn, inflight[id])
		if ev.kind() == protocol.WSText {
			order[id] = append(order[id], string(ev.inv.WS.Payload))
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			inflight[id]--
			mu.Unlock()
		}()
		if ev.kind() == protocol.WSText && string(ev.inv.WS.Payload) == "block" {
			select {
			case <-release:
			case <-time.After(4 * time.Second):
			}
		}
		return echo(ev)
	})
	env := startEdge(t, s, ws.Config{}, "order")

	a := dial(t, env.url("")).read()
	b := dial(t, env.url("")).read()
	a.send("block")
	// a's handler is blocked; b's events must still be answered.
	b.send("free")
	b.waitFor("free")
	for i := range 50 {
		a.send(fmt.Sprint(i))
	}
	close(release)
	a.waitFor("49")

	var aID string
	for _, ev := range rs.seen(protocol.WSText, "") {
		if string(ev.inv.WS.Payload) == "block" {
			aID = ev.conn()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if maxIn != 1 {
		t.Errorf("%d events of one connection were in flight at once, want 1", maxIn)
	}
	want := []string{"block"}
	for i := range 50 {
		want = append(want, fmt.Sprint(i))
	}
	if fmt.Sprint(order[aID]) != fmt.Sprint(want) {
		t.Errorf("events of %s out of order: %v", aID, order[aID])
	}
	if got := a.texts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replies out of order: %v", got)
	}
}

// A handler failure (action Error, or a NATS micro error reply) closes that
// client with 1011; the edge keeps serving the others.
func TestHandlerFailureCloses1011(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "flaky", false, func(ev *event) answer {
		switch string(ev.inv.WS.Payload) {
		case "fail":
			return answer{action: protocol.ActionError, errText: "boom"}
		case "micro":
			return answer{serviceErr: "500"}
		}
		return echo(ev)
	})
	env := startEdge(t, s, ws.Config{}, "flaky")
	dlq := subscribeSync(t, s, protocol.DLQSubject(prefix, "flaky", protocol.PhaseEvent))
	healthy := dial(t, env.url("")).read()
	for _, trigger := range []string{"fail", "micro"} {
		t.Run(trigger, func(t *testing.T) {
			cl := dial(t, env.url("")).read()
			cl.send("before")
			cl.waitFor("before")
			cl.send(trigger)
			code, reason := cl.waitClosed()
			if code != websocket.StatusInternalError || reason != "internal error" {
				t.Fatalf("close = %d %q, want 1011 internal error", code, reason)
			}
			healthy.send("still " + trigger)
			healthy.waitFor("still " + trigger)
		})
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_events_total", map[string]string{"kind": "text", "outcome": "plugin_error"}); got != 1 {
		t.Errorf("plugin_error events = %v, want 1", got)
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_events_total", map[string]string{"kind": "text", "outcome": "service_error"}); got != 1 {
		t.Errorf("service_error events = %v, want 1", got)
	}
	// Only the micro error is dead-lettered (it came first had the
	// handler's own Error been, from the same publisher).
	dl := nextMsg(t, dlq)
	if k := dl.Header.Get(ws.HeaderErrorKind); k != "Internal" {
		t.Errorf("dead letter kind %q, want Internal (the plugin error must not be dead-lettered)", k)
	}
	var req protocol.PluginRequest
	var inv protocol.Invocation
	if err := protocol.DecodeRequest(dl.Data, &req); err != nil {
		t.Fatalf("dead letter data: %v", err)
	}
	if err := protocol.DecodeInvocation(req.Data, &inv); err != nil || string(inv.WS.Payload) != "micro" {
		t.Errorf("dead letter is not the failed event: %v %q", err, inv.WS.Payload)
	}
	if dl.Header.Get(ws.HeaderRequestID) != req.RequestID.String() || dl.Header.Get(ws.HeaderConnectionID) != inv.WS.ConnectionID {
		t.Errorf("dead letter headers %v do not match request %v", dl.Header, req.RequestID)
	}
	// The failed connections still told the function they closed.
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(rs.seen(protocol.WSClose, "")); n != 2 {
			return fmt.Errorf("%d close events, want 2", n)
		}
		return nil
	})
}

// A reply that echoes another request's request_id is not this event's
// answer: like any reply the edge cannot read, its ops are not applied, the
// client is closed with 1011 and the event is dead-lettered as Decode (the
// gateway refuses such a reply the same way).
func TestReplyForAnotherRequestRefused(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "confused", false, func(ev *event) answer {
		if string(ev.inv.WS.Payload) == "stray" {
			a := ok(protocol.Op{Code: protocol.OpWSSendText, Value: []byte("stray reply applied")})
			a.strayID = true
			return a
		}
		return echo(ev)
	})
	env := startEdge(t, s, ws.Config{}, "confused")
	dlq := subscribeSync(t, s, protocol.DLQSubject(prefix, "confused", protocol.PhaseEvent))
	healthy := dial(t, env.url("")).read()
	cl := dial(t, env.url("")).read()
	cl.send("before")
	cl.waitFor("before")
	cl.send("stray")
	code, reason := cl.waitClosed()
	if code != websocket.StatusInternalError || reason != "internal error" {
		t.Fatalf("close = %d %q, want 1011 internal error", code, reason)
	}
	if got := cl.texts(); fmt.Sprint(got) != "[before]" {
		t.Errorf("client received %q, want only [before]: the stray reply's ops were applied", got)
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_events_total", map[string]string{"kind": "text", "outcome": "decode_error"}); got != 1 {
		t.Errorf("decode_error events = %v, want 1", got)
	}
	dl := nextMsg(t, dlq)
	if k, e := dl.Header.Get(ws.HeaderErrorKind), dl.Header.Get(ws.HeaderError); k != "Decode" || !strings.Contains(e, "decode request_id") {
		t.Errorf("dead letter kind %q error %q, want Decode on request_id", k, e)
	}
	var req protocol.PluginRequest
	var inv protocol.Invocation
	if err := protocol.DecodeRequest(dl.Data, &req); err != nil {
		t.Fatalf("dead letter data: %v", err)
	}
	if err := protocol.DecodeInvocation(req.Data, &inv); err != nil || string(inv.WS.Payload) != "stray" {
		t.Errorf("dead letter is not the refused event: %v %q", err, inv.WS.Payload)
	}
	healthy.send("still here")
	healthy.waitFor("still here")
}

// Without a node the open event finds no responders: 1013 try again later.
// A node that never answers: 1011 after the event timeout.
func TestOpenFailures(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "mute", false, func(ev *event) answer { return answer{silent: true} })

	t.Run("no responders", func(t *testing.T) {
		env := startEdge(t, s, ws.Config{EventRetries: 1}, "ghost")
		dlq := subscribeSync(t, s, protocol.DLQSubject(prefix, "ghost", protocol.PhaseEvent))
		cl := dial(t, env.url("")).read()
		if code, _ := cl.waitClosed(); code != websocket.StatusTryAgainLater {
			t.Fatalf("close = %d, want 1013", code)
		}
		dl := nextMsg(t, dlq)
		if k, n := dl.Header.Get(ws.HeaderErrorKind), dl.Header.Get(ws.HeaderAttempts); k != "NoResponder" || n != "2" {
			t.Errorf("dead letter kind %q after %s attempts, want NoResponder after 2", k, n)
		}
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_events_total", map[string]string{"kind": "open", "outcome": "no_responder"}); got != 1 {
			t.Errorf("no_responder events = %v, want 1", got)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		env := startEdge(t, s, ws.Config{EventTimeout: 100 * time.Millisecond}, "mute")
		dlq := subscribeSync(t, s, protocol.DLQSubject(prefix, "mute", protocol.PhaseEvent))
		cl := dial(t, env.url("")).read()
		if code, _ := cl.waitClosed(); code != websocket.StatusInternalError {
			t.Fatalf("close = %d, want 1011", code)
		}
		if k := nextMsg(t, dlq).Header.Get(ws.HeaderErrorKind); k != "Timeout" {
			t.Errorf("dead letter kind %q, want Timeout", k)
		}
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_dead_letters_total", nil); got != 1 {
			t.Errorf("dead letters = %v, want 1", got)
		}
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_events_total", map[string]string{"kind": "open", "outcome": "timeout"}); got != 1 {
			t.Errorf("timeout events = %v, want 1", got)
		}
	})
}

// A connection to a function deployed moments ago (WithFirstNodeWait, which
// nylon serve sets from the gateway's route) waits for the function's first
// node instead of closing with 1013 after EventRetries: the node that comes
// up 300 ms later answers the open event, and messages flow.
func TestOpenWaitsForANewFunctionsFirstNode(t *testing.T) {
	s := testutil.RunNATS(t)
	env := startEdgeWith(t, s, ws.Config{EventRetries: 1}, "fresh", func(srv *httptest.Server) {
		h := srv.Config.Handler
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(ws.WithFirstNodeWait(r.Context(), 5*time.Second)))
		})
	})
	cl := dial(t, env.url("")).read()
	time.Sleep(300 * time.Millisecond) // the open event finds no node meanwhile
	respond(t, s, "fresh", false, echo)
	cl.send("made it")
	cl.waitFor("made it")
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_events_total", map[string]string{"kind": "open", "outcome": "ok"}); got != 1 {
		t.Errorf("open events ok = %v, want 1", got)
	}
}

// A message over MaxMessageSize closes the client with 1009.
func TestMessageTooBig1009(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "echo", false, echo)
	env := startEdge(t, s, ws.Config{MaxMessageSize: 1024}, "echo")
	cl := dial(t, env.url("")).read()
	cl.send(strings.Repeat("a", 1024))
	cl.waitFor(strings.Repeat("a", 1024))
	cl.send(strings.Repeat("b", 1025))
	if code, _ := cl.waitClosed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close = %d, want 1009", code)
	}
	id := rs.seen(protocol.WSOpen, "")[0].conn()
	if ev := rs.waitEvent(t, protocol.WSClose, id); ev.inv.WS.CloseCode != 1009 {
		t.Fatalf("close event code %d, want 1009", ev.inv.WS.CloseCode)
	}
}

// Over MaxConnections an upgrade gets 503 before the handshake; a slot
// frees when a connection closes.
func TestMaxConnections503(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "echo", false, echo)
	env := startEdge(t, s, ws.Config{MaxConnections: 2}, "echo")
	a := dial(t, env.url("")).read()
	dial(t, env.url("")).read()
	if _, err := dialErr(t, env.url(""), nil); err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("third dial: err = %v, want status 503", err)
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_rejected_total", map[string]string{"reason": "max_connections"}); got != 1 {
		t.Errorf("rejected max_connections = %v, want 1", got)
	}
	_ = a.c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		c, err := dialErr(t, env.url(""), nil)
		if err != nil {
			return err
		}
		c.read()
		return nil
	})
}

// Only the request's own origin is allowed by default; OriginPatterns add
// others.
func TestOriginCheck(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "echo", false, echo)
	origin := func(o string) *websocket.DialOptions {
		return &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {o}}}
	}

	env := startEdge(t, s, ws.Config{}, "echo")
	if _, err := dialErr(t, env.url(""), origin("http://evil.example")); err == nil || !strings.Contains(err.Error(), "status 403") {
		t.Fatalf("foreign origin: err = %v, want status 403", err)
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_rejected_total", map[string]string{"reason": "origin"}); got != 1 {
		t.Errorf("rejected origin = %v, want 1", got)
	}
	same, err := dialErr(t, env.url(""), origin(env.srv.URL))
	if err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	same.read()

	allowed := startEdge(t, s, ws.Config{OriginPatterns: []string{"trusted.example"}}, "echo")
	if _, err := dialErr(t, allowed.url(""), origin("https://trusted.example")); err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	if _, err := dialErr(t, allowed.url(""), origin("https://evil.example")); err == nil {
		t.Fatalf("foreign origin accepted with OriginPatterns set")
	}
}

// A peer that stops answering pings is dropped; a live one stays.
func TestPingDropsDeadPeer(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "echo", false, echo)
	env := startEdge(t, s, ws.Config{PingInterval: 50 * time.Millisecond, PingTimeout: 250 * time.Millisecond}, "echo")

	live := dial(t, env.url("")).read()
	live.send("first")
	live.waitFor("first")
	liveID := rs.seen(protocol.WSOpen, "")[0].conn()

	dead := dial(t, env.url("")) // never reads, so never answers a ping
	_ = dead
	var deadID string
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		for _, ev := range rs.seen(protocol.WSOpen, "") {
			if ev.conn() != liveID {
				deadID = ev.conn()
				return nil
			}
		}
		return errors.New("dead peer's open event not seen")
	})
	ev := rs.waitEvent(t, protocol.WSClose, deadID)
	if ev.inv.WS.CloseCode != uint16(websocket.StatusAbnormalClosure) || ev.inv.WS.CloseReason != "ping timeout" {
		t.Fatalf("dead peer close event: %d %q, want 1006 ping timeout", ev.inv.WS.CloseCode, ev.inv.WS.CloseReason)
	}
	// The live client answered every ping meanwhile and is still served.
	live.send("second")
	live.waitFor("second")
	if evs := rs.seen(protocol.WSClose, liveID); len(evs) != 0 {
		t.Fatalf("live client was closed: %d %q", evs[0].inv.WS.CloseCode, evs[0].inv.WS.CloseReason)
	}
	if n := env.edge.Stats().Connections; n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// A live client is pinged every PingInterval for as long as it is open,
// not once: each ping arms the next.
func TestPingRepeats(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "echo", false, echo)
	env := startEdge(t, s, ws.Config{PingInterval: 10 * time.Millisecond, PingTimeout: time.Second}, "echo")
	var pings atomic.Int64
	cl, err := dialErr(t, env.url(""), &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		pings.Add(1)
		return true // answer it
	}})
	if err != nil {
		t.Fatal(err)
	}
	cl.read()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := pings.Load(); n < 5 {
			return fmt.Errorf("%d pings received, want 5", n)
		}
		return nil
	})
	if n := env.edge.Stats().Connections; n != 1 {
		t.Fatalf("%d connections, want the pinged one", n)
	}
}

// Close closes every client with 1001 after their close events, refuses
// new connections, and is idempotent.
func TestCloseGoingAway(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "relay", false, relay)
	env := startEdge(t, s, ws.Config{}, "relay")
	var clients []*client
	for range 3 {
		cl := dial(t, env.url("room=lobby")).read()
		clients = append(clients, cl)
	}
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := env.edge.Stats(); st.Members != 3 || st.Rooms != 1 {
			return fmt.Errorf("stats %+v, want 3 members in 1 room", st)
		}
		return nil
	})
	subs := env.nc.NumSubscriptions()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := env.edge.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	for i, cl := range clients {
		if code, reason := cl.waitClosed(); code != websocket.StatusGoingAway || reason != "going away" {
			t.Errorf("client %d: close = %d %q, want 1001 going away", i, code, reason)
		}
	}
	if n := len(rs.seen(protocol.WSClose, "")); n != 3 {
		t.Errorf("%d close events, want 3", n)
	}
	for _, ev := range rs.seen(protocol.WSClose, "") {
		if ev.inv.WS.CloseCode != 1001 {
			t.Errorf("close event code %d, want 1001", ev.inv.WS.CloseCode)
		}
	}
	if st := env.edge.Stats(); st != (ws.Stats{}) {
		t.Errorf("stats after close: %+v", st)
	}
	if got := env.nc.NumSubscriptions(); got != subs-1 {
		t.Errorf("subscriptions after close = %d, want %d (room released)", got, subs-1)
	}
	if _, err := dialErr(t, env.url(""), nil); err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("dial after close: err = %v, want status 503", err)
	}
	if err := env.edge.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// Close returns ctx's error when clients do not finish the handshake in
// time, and still releases every connection.
func TestCloseDeadline(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "echo", false, echo)
	env := startEdge(t, s, ws.Config{PingInterval: -1}, "echo")
	dial(t, env.url("")) // never reads: never answers the close frame
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := env.edge.Stats().Connections; n != 1 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := env.edge.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close: err = %v, want deadline exceeded", err)
	}
	env.closeErr = context.DeadlineExceeded
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("close took %v after its deadline", d)
	}
	if n := env.edge.Stats().Connections; n != 0 {
		t.Fatalf("%d connections after close", n)
	}
}

// A write that does not complete within WriteTimeout (the client stopped
// reading and the socket buffers are full, but its queue is not) drops the
// connection.
func TestWriteTimeoutDropsClient(t *testing.T) {
	s := testutil.RunNATS(t)
	big := strings.Repeat("z", 16<<10)
	rs := respond(t, s, "flood", false, func(ev *event) answer {
		if ev.kind() != protocol.WSText {
			return ok()
		}
		ops := make([]protocol.Op, 64)
		for i := range ops {
			ops[i] = protocol.Op{Code: protocol.OpWSSendText, Value: []byte(big)}
		}
		return ok(ops...)
	})
	env := startEdgeWith(t, s, ws.Config{SendQueue: 1000, WriteTimeout: 200 * time.Millisecond, PingInterval: -1}, "flood", func(srv *httptest.Server) {
		srv.Listener = &smallBufferListener{Listener: srv.Listener}
	})
	cl := dialSmallBuffer(t, env.url(""))
	cl.send("flood") // and never read
	ev := rs.waitEvent(t, protocol.WSClose, "")
	if ev.inv.WS.CloseCode != 1006 || ev.inv.WS.CloseReason != "write timeout" {
		t.Fatalf("close event %d %q, want 1006 write timeout", ev.inv.WS.CloseCode, ev.inv.WS.CloseReason)
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_slow_closed_total", nil); got != 0 {
		t.Fatalf("closed as slow consumer, want a write timeout")
	}
	waitStats(t, env, ws.Stats{})
}

// Ops with an invalid room are skipped, HTTP ops ignored, and a close code
// that may not be sent becomes 1000.
func TestInvalidOpsAreSkipped(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "bad", false, func(ev *event) answer {
		if ev.kind() != protocol.WSText {
			return ok()
		}
		return ok(
			protocol.Op{Code: protocol.OpWSJoinRoom, Key: "no.dots"},
			protocol.Op{Code: protocol.OpWSJoinRoom, Key: ""},
			protocol.Op{Code: protocol.OpWSBroadcastText, Key: "wild*", Value: []byte("x")},
			protocol.Op{Code: protocol.OpSetResponseStatus, Num: 500},
			protocol.Op{Code: protocol.OpWSSendText, Value: []byte("still here")},
			protocol.Op{Code: protocol.OpWSClose, Num: 1005, Value: []byte(strings.Repeat("r", 200))},
		)
	})
	env := startEdge(t, s, ws.Config{}, "bad")
	cl := dial(t, env.url("")).read()
	cl.send("go")
	code, reason := cl.waitClosed()
	if code != websocket.StatusNormalClosure || reason != strings.Repeat("r", 123) {
		t.Fatalf("close = %d %q, want 1000 with the reason cut to 123 bytes", code, reason)
	}
	if got := cl.texts(); len(got) != 1 || got[0] != "still here" {
		t.Fatalf("received %q, want only the valid send", got)
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_broadcasts_total", nil); got != 0 {
		t.Fatalf("%v broadcasts published to an invalid room", got)
	}
	waitStats(t, env, ws.Stats{})
}
