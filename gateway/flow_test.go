package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

func TestAuthPluginDeniesAndAllows(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	auth := e.serve("auth", protocol.PhaseRequestFilter, func(c *call) answer {
		v, _ := protocol.HeaderValue(c.Inv.Request.Headers, "Authorization")
		if v != "Bearer good" {
			return end(status(401), respHeader("WWW-Authenticate", "Bearer"), body("denied"))
		}
		return next(reqHeader("X-User", "alice"), respHeader("X-Auth", "ok"))
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - name: auth
    type: messaging
    messaging: nats
    group: auth_workers
    per_phase:
      request_filter: {}
    config: {realm: base, mode: strict}
routes:
  - path: /api/{kind}/*
    upstream: ` + up.URL + `/base
    plugins: [auth]
    config: {realm: api}
`)

	denied := get(t, srv.URL+"/api/items/7?x=1")
	wantStatus(t, denied, 401)
	if denied.Body != "denied" || denied.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("denied response: %q %v", denied.Body, denied.Header)
	}
	if up.hits.Load() != 0 {
		t.Fatalf("upstream reached by a denied request")
	}

	const inTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ok := get(t, srv.URL+"/api/items/7?x=1", "Authorization", "Bearer good", "traceparent", inTrace)
	wantStatus(t, ok, 200)
	if ok.Header.Get("X-Auth") != "ok" || ok.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("response headers: %v", ok.Header)
	}
	seen := up.last.Load()
	if got := seen.Header.Get("X-User"); got != "alice" {
		t.Fatalf("upstream saw X-User %q, want alice", got)
	}
	if seen.URL.Path != "/base/api/items/7" || seen.URL.RawQuery != "x=1" {
		t.Fatalf("upstream path %q query %q", seen.URL.Path, seen.URL.RawQuery)
	}
	upTrace := seen.Header.Get("traceparent")
	if !strings.HasPrefix(upTrace, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || upTrace == inTrace {
		t.Fatalf("upstream traceparent %q: want the client's trace with a new span", upTrace)
	}

	calls := auth.all()
	if len(calls) != 2 {
		t.Fatalf("auth saw %d calls, want 2", len(calls))
	}
	c := calls[1]
	q := c.Inv.Request
	if q.Method != "GET" || q.Path != "/api/items/7" || q.Query != "x=1" || q.ClientIP != "127.0.0.1" || q.Scheme != "http" {
		t.Fatalf("invocation request: %+v", q)
	}
	if v, _ := protocol.Lookup(q.Params, "kind"); v != "items" {
		t.Fatalf("params %v: want kind=items", q.Params)
	}
	if v, _ := protocol.Lookup(q.Params, "*"); v != "7" {
		t.Fatalf("params %v: want *=7", q.Params)
	}
	if v, _ := protocol.Lookup(c.Inv.Config, "realm"); v != "api" {
		t.Fatalf("config %v: the route's realm must win", c.Inv.Config)
	}
	if v, _ := protocol.Lookup(c.Inv.Config, "mode"); v != "strict" {
		t.Fatalf("config %v: the plugin's mode must be kept", c.Inv.Config)
	}
	if c.Req.Version != protocol.Version || c.Req.Phase != protocol.PhaseRequestFilter || c.Req.Method != 0 || c.Req.Timestamp == 0 {
		t.Fatalf("envelope: %+v", c.Req)
	}
	if c.Headers.Get(protocol.HeaderTraceparent) != upTrace {
		t.Fatalf("NATS traceparent %q, upstream %q: one span per request", c.Headers.Get(protocol.HeaderTraceparent), upTrace)
	}
	if c.Headers.Get(protocol.HeaderEnv) != "dev" {
		t.Fatalf("Nylon-Env %q", c.Headers.Get(protocol.HeaderEnv))
	}
	// The attempt's wait, request_timeout_ms, so the node does not start
	// the request after it.
	if got := c.Headers.Values(protocol.HeaderTimeout); len(got) != 1 || got[0] != "2000" {
		t.Fatalf("Nylon-Timeout-Ms %q, want [2000]", got)
	}
	if c.Subject != "nylon.dev.auth.request_filter" {
		t.Fatalf("subject %q", c.Subject)
	}
	if calls[0].Req.RequestID == calls[1].Req.RequestID || calls[0].Req.SessionID == calls[1].Req.SessionID {
		t.Fatalf("two requests share a request_id or session_id: %+v %+v", calls[0].Req, calls[1].Req)
	}
	if v := testutil.MetricSum(t, e.reg, "nylon_http_requests_total", map[string]string{"route": "/api/{kind}/*", "code": "401"}); v != 1 {
		t.Fatalf("nylon_http_requests_total 401 = %v", v)
	}
	if v := testutil.MetricSum(t, e.reg, "plugins_messaging_duration_seconds", map[string]string{"plugin": "auth", "phase": "request_filter"}); v != 2 {
		t.Fatalf("duration histogram count = %v, want 2", v)
	}
}

func TestRequestHeaderOpsReachLaterPluginsAndRemove(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("first", protocol.PhaseRequestFilter, func(c *call) answer {
		return next(reqHeader("X-Tenant", "t1"), protocol.Op{Code: protocol.OpRemoveRequestHeader, Key: "Cookie"},
			reqHeader("Bad Name", "x"), reqHeader("X-Split", "a\r\nInjected: 1"))
	})
	second := e.serve("second", protocol.PhaseRequestFilter, func(c *call) answer { return next() })
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: first, messaging: nats, per_phase: {request_filter: {}}}
  - {name: second, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /x, upstream: "` + up.URL + `", plugins: [first, second]}
`)
	wantStatus(t, get(t, srv.URL+"/x", "Cookie", "secret=1"), 200)
	q := second.all()[0].Inv.Request
	if v, _ := protocol.HeaderValue(q.Headers, "X-Tenant"); v != "t1" {
		t.Fatalf("second plugin did not see X-Tenant: %v", q.Headers)
	}
	if _, ok := protocol.HeaderValue(q.Headers, "Cookie"); ok {
		t.Fatalf("second plugin still sees Cookie: %v", q.Headers)
	}
	h := up.last.Load().Header
	if h.Get("X-Tenant") != "t1" || h.Get("Cookie") != "" || h.Get("X-Split") != "" || h.Get("Injected") != "" {
		t.Fatalf("upstream headers: %v", h)
	}
}

func TestResponseFilterRewritesUpstreamResponse(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	rf := e.serve("rewrite", protocol.PhaseResponseFilter, func(c *call) answer {
		r := c.Inv.Response
		if r == nil || r.Status != 200 {
			return answer{Action: protocol.ActionError, Error: "no upstream response"}
		}
		if v, _ := protocol.HeaderValue(r.Headers, "X-Upstream"); v != "yes" {
			return answer{Action: protocol.ActionError, Error: "upstream header missing"}
		}
		return next(status(203), respHeader("X-Filtered", "1"),
			protocol.Op{Code: protocol.OpRemoveResponseHeader, Key: "X-Upstream"})
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: rewrite, messaging: nats, per_phase: {response_filter: {}}}
  - {name: replace, messaging: nats, function: rewrite, per_phase: {response_filter: {}}}
routes:
  - {path: /r, upstream: "` + up.URL + `", plugins: [rewrite]}
`)
	r := get(t, srv.URL+"/r")
	wantStatus(t, r, 203)
	if r.Header.Get("X-Filtered") != "1" || r.Header.Get("X-Upstream") != "" {
		t.Fatalf("headers: %v", r.Header)
	}
	if !strings.Contains(r.Body, `"path":"/r"`) {
		t.Fatalf("body %q: the upstream body must pass unchanged", r.Body)
	}
	if rf.count() != 1 {
		t.Fatalf("response_filter calls: %d", rf.count())
	}
}

func TestResponseFilterReplacesBody(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("redact", protocol.PhaseResponseFilter, func(c *call) answer {
		return next(body("redacted"), respHeader("Content-Type", "text/plain"))
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: redact, messaging: nats, per_phase: {response_filter: {}}}
routes:
  - {path: /r, upstream: "` + up.URL + `", plugins: [redact]}
`)
	r := get(t, srv.URL+"/r")
	wantStatus(t, r, 200)
	if r.Body != "redacted" || r.Header.Get("Content-Length") != "8" || r.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("response: %q %v", r.Body, r.Header)
	}
}

func TestResponseBodyFilterChunks(t *testing.T) {
	e := newEnv(t)
	const payload = "abcdefghijklmnopqrst" // 20 bytes: chunks of 8, 8, 4
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
		_, _ = io.WriteString(w, payload)
	}))
	t.Cleanup(up.Close)
	bf := e.serve("upper", protocol.PhaseResponseBodyFilter, func(c *call) answer {
		r := c.Inv.Response
		out := strings.ToUpper(string(r.Body))
		if r.LastChunk {
			out += "!"
		}
		return next(body(out))
	})
	_, srv := e.gateway(yamlMessaging("")+`
plugins:
  - {name: upper, messaging: nats, per_phase: {response_body_filter: {}}}
routes:
  - {path: /b, upstream: "`+up.URL+`", plugins: [upper]}
`, gateway.WithBodyChunkSize(8))
	resp, err := http.Get(srv.URL + "/b")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ABCDEFGHIJKLMNOPQRST!" {
		t.Fatalf("body %q", b)
	}
	if resp.ContentLength != -1 {
		t.Fatalf("Content-Length %d kept although a body filter ran", resp.ContentLength)
	}
	calls := bf.all()
	if len(calls) != 3 {
		t.Fatalf("%d body filter calls, want 3", len(calls))
	}
	for i, c := range calls {
		r := c.Inv.Response
		if r.ChunkIndex != uint32(i) || r.LastChunk != (i == 2) || r.Status != 200 {
			t.Fatalf("chunk %d: index %d last %v status %d", i, r.ChunkIndex, r.LastChunk, r.Status)
		}
	}
	if string(calls[2].Inv.Response.Body) != "qrst" {
		t.Fatalf("last chunk %q", calls[2].Inv.Response.Body)
	}
}

// TestStreamedBodyOps: the seed's SET_RESPONSE_STREAM_* ops (106 start,
// 104 data, 105 end) arrive in one reply and make the body, from an origin
// function, a response_filter and a response_body_filter.
func TestStreamedBodyOps(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("streamer", protocol.PhaseRequestFilter, func(c *call) answer {
		return end(respHeader("Content-Type", "text/plain"), streamStart(), streamData("one,"), streamData("two"),
			streamEnd(), streamData("-ignored"))
	})
	e.serve("footer", protocol.PhaseResponseFilter, func(c *call) answer {
		return next(streamData(" [footer]"))
	})
	e.serve("tail", protocol.PhaseResponseBodyFilter, func(c *call) answer {
		if c.Inv.Response.LastChunk {
			return next(streamData(string(c.Inv.Response.Body)), streamData("<end>"))
		}
		return next()
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: footer, messaging: nats, per_phase: {response_filter: {}}}
  - {name: tail, messaging: nats, per_phase: {response_body_filter: {}}}
routes:
  - {path: /s, function: streamer}
  - {path: /u, upstream: "` + up.URL + `", plugins: [footer]}
  - {path: /t, function: streamer, plugins: [tail]}
`)
	r := get(t, srv.URL+"/s")
	wantStatus(t, r, 200)
	if r.Body != "one,two" || r.Header.Get("Content-Length") != "7" || r.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("origin: %q %v", r.Body, r.Header)
	}
	r = get(t, srv.URL+"/u")
	wantStatus(t, r, 200)
	// A reply's body ops build the body it sets: they replace the
	// upstream's, as 103 does.
	if r.Body != " [footer]" || r.Header.Get("Content-Length") != "9" || r.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("response_filter: %q %v", r.Body, r.Header)
	}
	r = get(t, srv.URL+"/t")
	wantStatus(t, r, 200)
	if r.Body != "one,two<end>" {
		t.Fatalf("response_body_filter: %q", r.Body)
	}
}

func TestFunctionOrigin(t *testing.T) {
	e := newEnv(t)
	hello := e.serve("hello", protocol.PhaseRequestFilter, func(c *call) answer {
		name, _ := protocol.Lookup(c.Inv.Request.Params, "name")
		greet, _ := protocol.Lookup(c.Inv.Config, "greeting")
		return end(status(200), respHeader("Content-Type", "text/plain"), body(greet+", "+name+"; "+string(c.Inv.Request.Body)))
	})
	e.serve("nexter", protocol.PhaseRequestFilter, func(c *call) answer { return next() })
	e.serve("stamp", protocol.PhaseResponseFilter, func(c *call) answer {
		return next(respHeader("X-Origin-Body-Len", fmt.Sprint(len(c.Inv.Response.Body))))
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: stamp, messaging: nats, per_phase: {response_filter: {}}}
routes:
  - {path: "/hello/{name}", function: hello, plugins: [stamp], config: {greeting: Hi}}
  - {path: "/next", function: nexter}
`)
	r := do(t, http.MethodPost, srv.URL+"/hello/bob", "body!")
	wantStatus(t, r, 200)
	if r.Body != "Hi, bob; body!" || r.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("response %q %v", r.Body, r.Header)
	}
	if r.Header.Get("X-Origin-Body-Len") != fmt.Sprint(len(r.Body)) {
		t.Fatalf("response_filter saw body of %q bytes, want %d", r.Header.Get("X-Origin-Body-Len"), len(r.Body))
	}
	if hello.count() != 1 {
		t.Fatalf("hello calls %d", hello.count())
	}
	nr := get(t, srv.URL+"/next")
	wantStatus(t, nr, 502)
	if p := nr.problem(t); p.Type != gateway.ProblemOriginNotEnded {
		t.Fatalf("problem %+v", p)
	}
}

func TestLoggingSeesEveryRequest(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	logs := e.serve("audit", protocol.PhaseLogging, func(c *call) answer { return next() })
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: audit, messaging: nats, per_phase: {logging: {}}}
routes:
  - {path: /l/*, upstream: "` + up.URL + `", plugins: [audit]}
`)
	const n = 20
	for i := range n {
		wantStatus(t, get(t, fmt.Sprintf("%s/l/%d", srv.URL, i)), 200)
	}
	eventually(t, wantCount(logs, n))
	paths := map[string]bool{}
	for _, c := range logs.all() {
		r := c.Inv.Response
		if r == nil || r.Status != 200 {
			t.Fatalf("logging invocation without the final response: %+v", r)
		}
		if v, _ := protocol.HeaderValue(r.Headers, "X-Upstream"); v != "yes" {
			t.Fatalf("logging response headers %v", r.Headers)
		}
		paths[c.Inv.Request.Path] = true
	}
	if len(paths) != n {
		t.Fatalf("logging saw %d distinct paths, want %d", len(paths), n)
	}
}

func TestLoggingNeverBlocksAndCloseWaits(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	gate := make(chan struct{})
	e.serveRaw("slowlog", protocol.PhaseLogging, func(req micro.Request) {
		c, ok := decodeCall(t, req)
		if !ok {
			return
		}
		go func() {
			<-gate
			respond(req, c, next())
		}()
	})
	gw, srv := e.gateway(yamlMessaging("")+`
plugins:
  - {name: slowlog, messaging: nats, per_phase: {logging: {timeout_ms: 5000}}}
routes:
  - {path: /l, upstream: "`+up.URL+`", plugins: [slowlog]}
`, gateway.WithLoggingPool(1, 1))
	const n = 6
	for range n {
		// Every request is answered while no logging call can finish.
		wantStatus(t, get(t, srv.URL+"/l"), 200)
	}
	dropped := testutil.MetricSum(t, e.reg, "nylon_gateway_logging_dropped_total", nil)
	if dropped < n-2 {
		t.Fatalf("dropped %v logging calls, want at least %d (1 worker busy, 1 queued)", dropped, n-2)
	}
	close(gate)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Close returned only after the accepted calls got their replies.
	done := testutil.MetricSum(t, e.reg, "plugins_messaging_duration_seconds", map[string]string{"plugin": "slowlog", "phase": "logging"})
	if done != n-dropped {
		t.Fatalf("%v logging calls completed at Close, want %v", done, n-dropped)
	}
}

func TestCloseGivesUpAtDeadline(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	received := &node{}
	e.serveRaw("stuck", protocol.PhaseLogging, func(req micro.Request) {
		if c, ok := decodeCall(t, req); ok {
			received.record(c) // and never answer
		}
	})
	gw, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: stuck, messaging: nats, per_phase: {logging: {timeout_ms: 60000}}}
routes:
  - {path: /l, upstream: "` + up.URL + `", plugins: [stuck]}
`)
	wantStatus(t, get(t, srv.URL+"/l"), 200)
	eventually(t, wantCount(received, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := gw.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close: %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("close took %v", el)
	}
}

func TestHeadAndProblemShape(t *testing.T) {
	e := newEnv(t)
	_, srv := e.gateway(yamlMessaging(""))
	r := get(t, srv.URL+"/nowhere")
	wantStatus(t, r, 404)
	p := r.problem(t)
	if p.Type != gateway.ProblemNotFound {
		t.Fatalf("problem %+v", p)
	}
	var raw map[string]any
	_ = json.Unmarshal([]byte(r.Body), &raw)
	for _, k := range []string{"type", "title", "status", "detail", "request_id"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("problem lacks %q: %s", k, r.Body)
		}
	}
}

func TestFunctionOriginThroughBodyFilterAndPluginEntry(t *testing.T) {
	e := newEnv(t)
	origin := e.serve("greeter-v2", protocol.PhaseRequestFilter, func(c *call) answer {
		return end(status(201), body("0123456789"))
	})
	e.serve("shout", protocol.PhaseResponseBodyFilter, func(c *call) answer {
		return next(body("[" + string(c.Inv.Response.Body) + "]"))
	})
	_, srv := e.gateway(yamlMessaging("")+`
plugins:
  - {name: greeter, function: greeter-v2, messaging: nats, per_phase: {request_filter: {timeout_ms: 300}}}
  - {name: shout, messaging: nats, per_phase: {response_body_filter: {}}}
routes:
  - {path: /g, function: greeter, plugins: [shout]}
`, gateway.WithBodyChunkSize(4))
	r := get(t, srv.URL+"/g")
	wantStatus(t, r, 201)
	if r.Body != "[0123][4567][89]" {
		t.Fatalf("body %q", r.Body)
	}
	if origin.count() != 1 || origin.all()[0].Subject != "nylon.dev.greeter-v2.request_filter" {
		t.Fatalf("origin calls %d", origin.count())
	}
	if r := do(t, http.MethodHead, srv.URL+"/g", ""); r.Status != 201 || r.Body != "" {
		t.Fatalf("HEAD: %d %q", r.Status, r.Body)
	}
}
