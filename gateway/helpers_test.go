package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

const prefix = "nylon.dev"

// env is one test's world: a real NATS server, a connection, and whatever
// the test starts on them.
type env struct {
	t   *testing.T
	nc  *nats.Conn
	url string
	reg *prometheus.Registry
	log *testutil.SyncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := testutil.RunNATS(t)
	return &env{t: t, nc: testutil.Connect(t, s), url: s.ClientURL(), reg: prometheus.NewRegistry(), log: &testutil.SyncBuffer{}}
}

// call is what a stand-in node received: the envelope, the decoded
// invocation and the NATS headers.
type call struct {
	Req     protocol.PluginRequest
	Inv     protocol.Invocation
	Headers micro.Headers
	Subject string
}

// answer is a stand-in node's verdict.
type answer struct {
	Action protocol.Action
	Ops    []protocol.Op
	Error  string
}

func next(ops ...protocol.Op) answer { return answer{Action: protocol.ActionNext, Ops: ops} }
func end(ops ...protocol.Op) answer  { return answer{Action: protocol.ActionEnd, Ops: ops} }

func status(n int) protocol.Op { return protocol.Op{Code: protocol.OpSetResponseStatus, Num: int64(n)} }
func body(s string) protocol.Op {
	return protocol.Op{Code: protocol.OpSetResponseBody, Value: []byte(s)}
}
func streamStart() protocol.Op { return protocol.Op{Code: protocol.OpSetStreamHeader} }
func streamData(s string) protocol.Op {
	return protocol.Op{Code: protocol.OpSetStreamData, Value: []byte(s)}
}
func streamEnd() protocol.Op { return protocol.Op{Code: protocol.OpSetStreamEnd} }
func respHeader(k, v string) protocol.Op {
	return protocol.Op{Code: protocol.OpSetResponseHeader, Key: k, Value: []byte(v)}
}
func reqHeader(k, v string) protocol.Op {
	return protocol.Op{Code: protocol.OpSetRequestHeader, Key: k, Value: []byte(v)}
}

// decodeCall decodes a request as a node would, failing the test on a bad one.
func decodeCall(t testing.TB, req micro.Request) (*call, bool) {
	c := &call{Headers: req.Headers(), Subject: req.Subject()}
	if err := protocol.DecodeRequest(req.Data(), &c.Req); err != nil {
		t.Errorf("node: decode request on %s: %v", req.Subject(), err)
		_ = req.Error("400", "decode", nil)
		return nil, false
	}
	if err := protocol.DecodeInvocation(c.Req.Data, &c.Inv); err != nil {
		t.Errorf("node: decode invocation on %s: %v", req.Subject(), err)
		_ = req.Error("400", "decode", nil)
		return nil, false
	}
	return c, true
}

// respond answers req for c the way a node does.
func respond(req micro.Request, c *call, a answer) {
	resp := protocol.PluginResponse{
		Version:   protocol.Version,
		RequestID: c.Req.RequestID,
		SessionID: c.Req.SessionID,
		Action:    a.Action,
		Data:      protocol.AppendOps(nil, a.Ops),
		Error:     a.Error,
	}
	hdr := micro.Headers{}
	if tp := c.Headers.Get(protocol.HeaderTraceparent); tp != "" {
		hdr[protocol.HeaderTraceparent] = []string{tp}
	}
	_ = req.Respond(resp.AppendMsgpack(nil), micro.WithHeaders(hdr))
}

// node serves fn's phase on a real NATS micro endpoint in queue group fn,
// answering with h, and records every call.
type node struct {
	mu    sync.Mutex
	calls []*call
	n     atomic.Int64
}

func (n *node) record(c *call) {
	n.mu.Lock()
	n.calls = append(n.calls, c)
	n.mu.Unlock()
	n.n.Add(1)
}

func (n *node) all() []*call {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*call(nil), n.calls...)
}

func (n *node) count() int { return int(n.n.Load()) }

// distinctIDs counts the distinct request_ids received.
func (n *node) distinctIDs() int {
	ids := map[protocol.RequestID]bool{}
	for _, c := range n.all() {
		ids[c.Req.RequestID] = true
	}
	return len(ids)
}

// serve registers fn's phase with a synchronous handler.
func (e *env) serve(fn string, ph protocol.Phase, h func(*call) answer) *node {
	e.t.Helper()
	n := &node{}
	e.serveRaw(fn, ph, func(req micro.Request) {
		c, ok := decodeCall(e.t, req)
		if !ok {
			return
		}
		n.record(c)
		respond(req, c, h(c))
	})
	return n
}

// serveRaw registers fn's phase with a raw micro handler.
func (e *env) serveRaw(fn string, ph protocol.Phase, h micro.HandlerFunc) {
	e.t.Helper()
	svc, err := micro.AddService(e.nc, micro.Config{Name: fn, Version: "1.0.0"})
	if err != nil {
		e.t.Fatalf("micro service %s: %v", fn, err)
	}
	e.t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint(ph.String(), h,
		micro.WithEndpointSubject(protocol.PhaseSubject(prefix, fn, ph)),
		micro.WithEndpointQueueGroup(fn))
	if err != nil {
		e.t.Fatalf("micro endpoint %s.%s: %v", fn, ph, err)
	}
	// The subscription is registered once the server has it.
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
}

// gateway builds a gateway from YAML and serves it over HTTP.
func (e *env) gateway(yaml string, opts ...gateway.Option) (*gateway.Gateway, *httptest.Server) {
	e.t.Helper()
	cfg, err := gateway.ParseConfig("test.yaml", []byte(yaml))
	if err != nil {
		e.t.Fatalf("config: %v", err)
	}
	opts = append([]gateway.Option{
		gateway.WithRegisterer(e.reg),
		gateway.WithLogger(slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		gateway.WithSeed(1),
	}, opts...)
	gw, err := gateway.New(*cfg, e.nc, opts...)
	if err != nil {
		e.t.Fatalf("gateway: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		e.t.Fatalf("gateway start: %v", err)
	}
	srv := httptest.NewServer(gw)
	e.t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := gw.Close(ctx); err != nil {
			e.t.Errorf("gateway close: %v", err)
		}
	})
	return gw, srv
}

// upstream is an origin that echoes what it received as JSON.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
	last atomic.Pointer[http.Request]
}

func (e *env) upstream() *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.last.Store(r.Clone(context.Background()))
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"path":    r.URL.Path,
			"query":   r.URL.RawQuery,
			"headers": r.Header,
			"body":    string(b),
		})
	}))
	e.t.Cleanup(u.Close)
	return u
}

// result is an HTTP response read whole.
type result struct {
	Status  int
	Header  http.Header
	Body    string
	Elapsed time.Duration
}

func (r result) problem(t testing.TB) gateway.Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json (status %d, body %q)", ct, r.Status, r.Body)
	}
	var p gateway.Problem
	if err := json.Unmarshal([]byte(r.Body), &p); err != nil {
		t.Fatalf("problem body %q: %v", r.Body, err)
	}
	if p.Status != r.Status || p.Type == "" || p.Title == "" || p.RequestID == "" {
		t.Fatalf("incomplete problem %+v for status %d", p, r.Status)
	}
	return p
}

func do(t testing.TB, method, url string, body string, hdr ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Elapsed: time.Since(start)}
}

func get(t testing.TB, url string, hdr ...string) result {
	return do(t, http.MethodGet, url, "", hdr...)
}

func wantStatus(t testing.TB, r result, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body %q", r.Status, want, r.Body)
	}
}

// eventually polls fn (testutil.Eventually with test-sized defaults).
func eventually(t testing.TB, fn func() error) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, fn)
}

func wantCount(n *node, want int) func() error {
	return func() error {
		if got := n.count(); got != want {
			return fmt.Errorf("node saw %d calls, want %d", got, want)
		}
		return nil
	}
}

// deadLetterRoute routes /x behind the plugin nobody, which no node
// serves: every request fails its request_filter (200 ms) and is
// dead-lettered. Append it to yamlMessaging.
const deadLetterRoute = `
plugins:
  - name: nobody
    messaging: nats
    per_phase:
      request_filter: {timeout_ms: 200}
routes:
  - {path: /x, upstream: "http://127.0.0.1:1", plugins: [nobody]}
`

// yamlMessaging is a messaging block for tests; extra lines are appended
// (indented by the caller).
func yamlMessaging(extra string) string {
	return `messaging:
  - name: nats
    type: nats
    subject_prefix: "nylon.dev"
    request_timeout_ms: 2000
` + extra
}

// getHandler serves one GET through h without a network listener.
func getHandler(t testing.TB, h http.Handler, path string) result {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	h.ServeHTTP(rec, req)
	return result{Status: rec.Code, Header: rec.Header(), Body: rec.Body.String()}
}

// wsRoundTrip opens a WebSocket to the http:// url, sends msg as text,
// and returns the first message back, closing normally after it.
func wsRoundTrip(t testing.TB, url, msg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read the answer to %q: %v", msg, err)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	return string(got)
}

// oneShot is a client whose requests each have a connection of their own,
// for responses that end in an aborted connection: net/http's client
// sends a GET again, once, when a reused connection closes before any
// answer, which would make one request two.
func oneShot() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}
