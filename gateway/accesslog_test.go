package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

const msgAccess = "gateway: access"

// jsonLog is a JSON slog logger at DEBUG into a buffer, for the gateway's
// lines and its access lines alike (serve gives both one logger).
type jsonLog struct {
	buf *testutil.SyncBuffer
	log *slog.Logger
}

func newJSONLog() jsonLog {
	buf := &testutil.SyncBuffer{}
	return jsonLog{buf: buf, log: slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// records returns the lines with message msg (all of them when empty).
func (l jsonLog) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range bytes.Lines(l.buf.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg == "" || m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// accessOf returns the access lines of the requests sent with User-Agent ua.
func (l jsonLog) accessOf(t *testing.T, ua string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range l.records(t, msgAccess) {
		if m["user_agent"] == ua {
			out = append(out, m)
		}
	}
	return out
}

// waitAccess waits for the access line of the request sent with
// User-Agent ua: the handler writes it as it returns, which can be after
// the client has read the response.
func (l jsonLog) waitAccess(t *testing.T, ua string) map[string]any {
	t.Helper()
	var got []map[string]any
	eventually(t, func() error {
		if got = l.accessOf(t, ua); len(got) == 0 {
			return fmt.Errorf("no access line with user_agent %q in:\n%s", ua, l.buf.String())
		}
		return nil
	})
	return got[0]
}

// failureOf returns the request_id of the "gateway: request failed" line
// with the given status, failing the test unless there is exactly one.
func (l jsonLog) failureOf(t *testing.T, status int) string {
	t.Helper()
	var ids []string
	for _, m := range l.records(t, "gateway: request failed") {
		if m["status"] == float64(status) {
			id, _ := m["request_id"].(string)
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d failure lines with status %d, want 1:\n%s", len(ids), status, l.buf.String())
	}
	return ids[0]
}

// The trace id of a traceparent sent by the tests' clients, and the
// header.
const (
	accessTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	accessTrace   = "00-" + accessTraceID + "-00f067aa0ba902b7-01"
)

// accessGateway builds, in w's world, a gateway with the access log on
// (to l), trusting 127.0.0.1 as a proxy, with the WebSocket edge serving
// the sdk guest's events. Routes: the function sdk at /client-ip (every
// phase: HTTP and WebSocket), /echo (request_filter only) and /small
// (a 16-byte body limit); upstream routes /up/*, /text behind the guest's
// request_filter (which Ends), /streamed/* behind its
// response_body_filter (16-byte chunks), /post-only (POST), /slow (an
// upstream that never answers) and /tunnel (an upstream that switches
// protocols); and /x behind a plugin no node serves (a dead letter).
func (w *proxyWorld) accessGateway(t *testing.T, l jsonLog, opts ...gateway.Option) string {
	t.Helper()
	slow := w.e.slowUpstream()
	tunnel := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
		_, _ = io.Copy(c, br) // echo, until the client closes
	})
	yaml := yamlMessaging("") + `
plugins:
  - name: nobody
    messaging: nats
    per_phase:
      request_filter: {timeout_ms: 200}
  - {name: sdkrf, function: sdk, messaging: nats, per_phase: {request_filter: {}}}
  - {name: sdkbody, function: sdk, messaging: nats, per_phase: {response_body_filter: {}}}
routes:
  - {path: /x, upstream: "http://127.0.0.1:1", plugins: [nobody]}
  - {path: "/up/*", upstream: "` + w.up.URL + `"}
  - {path: /text, upstream: "` + w.up.URL + `", plugins: [sdkrf]}
  - {path: "/streamed/*", upstream: "` + w.up.URL + `", plugins: [sdkbody]}
  - {path: /post-only, methods: [POST], upstream: "` + w.up.URL + `"}
  - {path: /slow, upstream: "` + slow + `"}
  - {path: /tunnel, upstream: "` + tunnel + `"}
`
	edge, err := ws.New(ws.Config{Env: protocol.DefaultEnv, SubjectPrefix: prefix}, w.e.nc,
		ws.WithLogger(slog.New(slog.DiscardHandler)), ws.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = edge.Close(context.Background()) })
	edgeHandler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		info, _ := gateway.RouteOf(r.Context())
		edge.ServeFunction(rw, r.WithContext(ws.WithClientIP(r.Context(), info.ClientIP)), info.Function, info.Config)
	})
	gw, srv := w.e.gateway(yaml, append([]gateway.Option{gateway.WithRegisterer(prometheus.NewRegistry()),
		gateway.WithLogger(l.log), gateway.WithWebSocket(edgeHandler), gateway.WithTrustedProxies("127.0.0.1"),
		gateway.WithBodyChunkSize(16)}, opts...)...)
	rf := protocol.PhaseSetOf(protocol.PhaseRequestFilter)
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/client-ip", Function: "sdk", Phases: w.phases},
		{Path: "/echo", Function: "sdk", Phases: rf},
		{Path: "/small", Function: "sdk", Phases: rf, MaxBodyBytes: 16},
	}); err != nil {
		t.Fatal(err)
	}
	// The node may not serve the function yet.
	eventually(t, func() error {
		if r := get(t, srv.URL+"/client-ip", "User-Agent", "warm-up"); r.Status != http.StatusOK {
			return fmt.Errorf("/client-ip: %d %s", r.Status, r.Body)
		}
		return nil
	})
	return srv.URL
}

// slowUpstream is an origin that answers nothing until its client goes.
func (e *env) slowUpstream() string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// accessReq is a request of the access log tests: its User-Agent ua
// finds its line; every one comes through the trusted proxy for
// 203.0.113.9 and carries accessTrace.
func accessReq(t *testing.T, method, url, body, ua string, hdr ...string) result {
	t.Helper()
	return do(t, method, url, body, append([]string{"User-Agent", ua, "X-Forwarded-For", "203.0.113.9",
		"Traceparent", accessTrace}, hdr...)...)
}

// wantAccess checks the fields every access line has, and want's.
func wantAccess(t *testing.T, name string, line map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got, ok := line[k]; !ok || got != v {
			t.Errorf("%s: %s = %v (%T), want %v; line %v", name, k, got, got, v, line)
		}
	}
	if line["level"] != "INFO" || line["client_ip"] != "203.0.113.9" {
		t.Errorf("%s: level %v, client_ip %v; want INFO and 203.0.113.9 (X-Forwarded-For behind the trusted peer)", name, line["level"], line["client_ip"])
	}
	if _, ok := want["function"]; !ok {
		if f, ok := line["function"]; ok {
			t.Errorf("%s: function %v on a route without one", name, f)
		}
	}
	tp, _ := line["traceparent"].(string)
	if !strings.HasPrefix(tp, "00-"+accessTraceID+"-") || tp == accessTrace {
		t.Errorf("%s: traceparent %q, want the client's trace continued with the gateway's span", name, tp)
	}
	if d, ok := line["duration"].(float64); !ok || d <= 0 {
		t.Errorf("%s: duration %v, want a positive number of nanoseconds", name, line["duration"])
	}
	if strings.Contains(fmt.Sprint(line), "s3cret") {
		t.Errorf("%s: the query string is in the line: %v", name, line)
	}
}

// TestAccessLogOneLinePerRequest: with WithAccessLog, every request gets
// exactly one INFO line, whichever way it ends: a function origin (a real
// node running the SDK guest), an upstream, a request_filter that Ends, a
// streamed body (after its last chunk), a failure (with the failure line's
// request_id), 404, 405, 400, 413 and a client that goes away. The line
// has the path without the query, the route and function, the status and
// body bytes sent, the client behind the trusted proxy, the request_id,
// the traceparent and the user agent (truncated).
func TestAccessLogOneLinePerRequest(t *testing.T) {
	w := newProxyWorld(t)
	l := newJSONLog()
	base := w.accessGateway(t, l, gateway.WithAccessLog(l.log))

	type check struct {
		name   string
		method string
		path   string
		body   string
		status int
		want   map[string]any
		// then checks the line further, with the response.
		then func(t *testing.T, line map[string]any, r result)
	}
	wantRequestIDOfProblem := func(t *testing.T, line map[string]any, r result) {
		t.Helper()
		if p := r.problem(t); line["request_id"] != p.RequestID {
			t.Errorf("request_id %v, want the problem's %s", line["request_id"], p.RequestID)
		}
	}
	wantBytes := func(t *testing.T, line map[string]any, r result) {
		t.Helper()
		if line["bytes"] != float64(len(r.Body)) || len(r.Body) == 0 {
			t.Errorf("bytes %v, want the %d body bytes sent", line["bytes"], len(r.Body))
		}
	}
	both := func(fns ...func(*testing.T, map[string]any, result)) func(*testing.T, map[string]any, result) {
		return func(t *testing.T, line map[string]any, r result) {
			t.Helper()
			for _, fn := range fns {
				fn(t, line, r)
			}
		}
	}
	checks := []check{
		{name: "function origin", method: "GET", path: "/echo?token=s3cret", status: 200,
			want: map[string]any{"method": "GET", "path": "/echo", "route": "/echo", "function": "sdk", "status": 200.0},
			then: func(t *testing.T, line map[string]any, r result) {
				wantBytes(t, line, r)
				var echo struct {
					RequestID string `json:"request_id"`
					Host      string `json:"host"`
				}
				if err := json.Unmarshal([]byte(r.Body), &echo); err != nil {
					t.Fatalf("echo %q: %v", r.Body, err)
				}
				if echo.RequestID == "" || line["request_id"] != echo.RequestID {
					t.Errorf("request_id %v, want the function's invocation's %q", line["request_id"], echo.RequestID)
				}
				if line["host"] != echo.Host || echo.Host == "" {
					t.Errorf("host %v, want %q", line["host"], echo.Host)
				}
			}},
		{name: "upstream", method: "GET", path: "/up/a?token=s3cret", status: 200,
			want: map[string]any{"path": "/up/a", "route": "/up/*", "status": 200.0},
			then: func(t *testing.T, line map[string]any, r result) {
				wantBytes(t, line, r)
				if id, ok := line["request_id"]; ok {
					t.Errorf("request_id %v on a request that called no phase", id)
				}
			}},
		{name: "request_filter End", method: "GET", path: "/text", status: 201,
			want: map[string]any{"path": "/text", "route": "/text", "status": 201.0, "bytes": float64(len("plain"))},
			then: func(t *testing.T, line map[string]any, r result) {
				if id, _ := line["request_id"].(string); len(id) != 36 {
					t.Errorf("request_id %v, want the request_filter call's", line["request_id"])
				}
			}},
		{name: "streamed body", method: "GET", path: "/streamed/a", status: 200,
			want: map[string]any{"path": "/streamed/a", "route": "/streamed/*", "status": 200.0},
			then: func(t *testing.T, line map[string]any, r result) {
				// Many 16-byte chunks: the line counts the last one's bytes.
				if !strings.Contains(r.Body, ",true:") || strings.Count(r.Body, ",false:") < 3 {
					t.Fatalf("body %q, want several filtered chunks", r.Body)
				}
				wantBytes(t, line, r)
			}},
		{name: "HEAD", method: "HEAD", path: "/echo", status: 200,
			want: map[string]any{"method": "HEAD", "path": "/echo", "status": 200.0, "bytes": 0.0, "function": "sdk"}},
		{name: "a failed request", method: "GET", path: "/x", status: 503,
			want: map[string]any{"path": "/x", "route": "/x", "status": 503.0},
			then: func(t *testing.T, line map[string]any, r result) {
				wantRequestIDOfProblem(t, line, r)
				if id := l.failureOf(t, 503); id != line["request_id"] {
					t.Errorf("the failure line's request_id %q, the access line's %v: want one", id, line["request_id"])
				}
			}},
		{name: "404", method: "GET", path: "/nowhere?token=s3cret", status: 404,
			want: map[string]any{"path": "/nowhere", "route": "", "status": 404.0},
			then: both(wantRequestIDOfProblem, wantBytes)},
		{name: "405", method: "GET", path: "/post-only", status: 405,
			want: map[string]any{"path": "/post-only", "route": "", "status": 405.0},
			then: both(wantRequestIDOfProblem, wantBytes)},
		{name: "400 bad path", method: "GET", path: "/up/..%2Fadmin", status: 400,
			want: map[string]any{"path": "/up/../admin", "route": "", "status": 400.0},
			then: both(wantRequestIDOfProblem, wantBytes)},
		{name: "413", method: "POST", path: "/small", body: strings.Repeat("b", 100), status: 413,
			want: map[string]any{"method": "POST", "path": "/small", "route": "/small", "function": "sdk", "status": 413.0},
			then: func(t *testing.T, line map[string]any, r result) {
				wantRequestIDOfProblem(t, line, r)
				wantBytes(t, line, r)
				if id := l.failureOf(t, 413); id != line["request_id"] {
					t.Errorf("the failure line's request_id %q, the access line's %v: want one", id, line["request_id"])
				}
			}},
	}
	for i, c := range checks {
		ua := fmt.Sprintf("access-test/%d", i)
		r := accessReq(t, c.method, base+c.path, c.body, ua)
		wantStatus(t, r, c.status)
		line := l.waitAccess(t, ua)
		wantAccess(t, c.name, line, c.want)
		if c.then != nil {
			c.then(t, line, r)
		}
	}

	// A client that goes away before the answer: 499.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "access-test/gone")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Traceparent", accessTrace)
	if resp, err := oneShot().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("/slow answered %d, want the client's own timeout", resp.StatusCode)
	}
	wantAccess(t, "client gone", l.waitAccess(t, "access-test/gone"),
		map[string]any{"path": "/slow", "route": "/slow", "status": 499.0, "bytes": 0.0})

	// The user agent is bounded.
	long := "ua-" + strings.Repeat("x", 1000)
	wantStatus(t, accessReq(t, "GET", base+"/up/long", "", long), 200)
	var got string
	eventually(t, func() error {
		for _, m := range l.records(t, msgAccess) {
			if m["path"] == "/up/long" {
				got, _ = m["user_agent"].(string)
				return nil
			}
		}
		return errors.New("no line for /up/long")
	})
	if got != long[:256]+"..." {
		t.Errorf("user_agent of %d bytes logged as %d bytes %q, want its first 256 and ...", len(long), len(got), got)
	}

	// Exactly one line per request, and none with the query.
	for i := range checks {
		if n := len(l.accessOf(t, fmt.Sprintf("access-test/%d", i))); n != 1 {
			t.Errorf("%s: %d access lines, want 1", checks[i].name, n)
		}
	}
	if n := len(l.accessOf(t, "access-test/gone")); n != 1 {
		t.Errorf("client gone: %d access lines, want 1", n)
	}
	if strings.Contains(l.buf.String(), "s3cret") {
		t.Errorf("the query string reached the log:\n%s", l.buf.String())
	}
}

// TestAccessLogWebSocket: an upgraded connection's line comes when it
// ends, as nginx writes it, with 101 and the connection's duration; the
// WebSocket edge's (a real node runs the guest's open event) and an
// upstream's tunnel alike.
func TestAccessLogWebSocket(t *testing.T) {
	w := newProxyWorld(t)
	l := newJSONLog()
	base := w.accessGateway(t, l, gateway.WithAccessLog(l.log))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/client-ip", &websocket.DialOptions{
		HTTPHeader: http.Header{"User-Agent": {"access-test/ws"}, "X-Forwarded-For": {"203.0.113.9"}, "Traceparent": {accessTrace}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	opened := time.Now()
	_, msg, err := c.Read(ctx)
	if err != nil || string(msg) != "client_ip 203.0.113.9 http" {
		t.Fatalf("open event: %q, %v", msg, err)
	}
	// The connection is up, the handshake long answered: no line yet.
	if n := len(l.accessOf(t, "access-test/ws")); n != 0 {
		t.Fatalf("%d access lines while the connection is open, want its line at its end", n)
	}
	const held = 200 * time.Millisecond
	time.Sleep(time.Until(opened.Add(held))) // the duration measured, not a synchronisation
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	line := l.waitAccess(t, "access-test/ws")
	wantAccess(t, "WebSocket", line, map[string]any{"path": "/client-ip", "route": "/client-ip", "function": "sdk", "status": 101.0})
	if d := time.Duration(line["duration"].(float64)); d < held {
		t.Errorf("duration %v, want the connection's (at least %v)", d, held)
	}

	// An upstream that switches protocols: the proxy tunnels, writing the
	// 101 itself.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	_, _ = io.WriteString(conn, "GET /tunnel HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"+
		"User-Agent: access-test/tunnel\r\nX-Forwarded-For: 203.0.113.9\r\nTraceparent: "+accessTrace+"\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade through the tunnel route: %v %v", resp, err)
	}
	_, _ = io.WriteString(conn, "ping")
	echo := make([]byte, 4)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("through the tunnel: %q, %v", echo, err)
	}
	if n := len(l.accessOf(t, "access-test/tunnel")); n != 0 {
		t.Fatalf("%d access lines while the tunnel is open, want its line at its end", n)
	}
	conn.Close()
	wantAccess(t, "tunnel", l.waitAccess(t, "access-test/tunnel"),
		map[string]any{"path": "/tunnel", "route": "/tunnel", "status": 101.0, "bytes": 0.0})

	for _, ua := range []string{"access-test/ws", "access-test/tunnel"} {
		if n := len(l.accessOf(t, ua)); n != 1 {
			t.Errorf("%s: %d access lines, want 1", ua, n)
		}
	}
}

// TestAccessLogOff: without WithAccessLog (the default), or with a nil
// logger, no request writes an access line; a logger that drops INFO gets
// a warning at New, since it would write none.
func TestAccessLogOff(t *testing.T) {
	w := newProxyWorld(t)
	for _, opts := range [][]gateway.Option{nil, {gateway.WithAccessLog(nil)}} {
		l := newJSONLog()
		base := w.accessGateway(t, l, opts...)
		for _, path := range []string{"/echo", "/up/a", "/text", "/x", "/nowhere", "/up/..%2Fadmin"} {
			_ = accessReq(t, "GET", base+path, "", "access-test/off")
		}
		if got := l.records(t, msgAccess); len(got) != 0 {
			t.Errorf("%d options: access lines with the access log off: %v", len(opts), got)
		}
	}

	l := newJSONLog()
	warnOnly := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gw, err := gateway.New(gateway.Config{}, w.e.nc, gateway.WithLogger(l.log), gateway.WithAccessLog(warnOnly),
		gateway.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close(context.Background())
	if got := l.records(t, "gateway: the access log is on, but its logger drops INFO lines: no access line will be written"); len(got) != 1 {
		t.Errorf("New with an access logger at WARN: %d warnings, want 1:\n%s", len(got), l.buf.String())
	}
}

// rawRequest writes req as it is on a connection of its own to the
// gateway at base and returns the response's status (0 when the
// connection closes with none).
func rawRequest(t *testing.T, base, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = io.WriteString(conn, req) }() // a large request is read as it is written
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Every field a client chooses is bounded in an access line: net/http
// takes a request line and headers up to 1 MiB, so a method, host or
// path of half a megabyte must not make a line of half a megabyte. A
// decoded path's newlines, escape sequences, NULs and invalid UTF-8 stay
// inside their line, JSON and text alike; and a HEAD has no body bytes,
// though the gateway wrote a problem for it.
func TestAccessLogBoundsClientFields(t *testing.T) {
	w := newProxyWorld(t)
	l := newJSONLog()
	text := &testutil.SyncBuffer{}
	both := slog.New(slog.NewMultiHandler(l.log.Handler(), slog.NewTextHandler(text, nil)))
	base := w.accessGateway(t, l, gateway.WithAccessLog(both))

	big := strings.Repeat("a", 512<<10)
	for _, tc := range []struct {
		name, req string
		status    int
		field     string
		max       int
	}{
		{"path", "GET /up/" + big + " HTTP/1.1\r\nHost: h\r\n", 200, "path", 2048},
		{"unrouted path", "GET /" + big + " HTTP/1.1\r\nHost: h\r\n", 404, "path", 2048},
		{"host", "GET /up/a HTTP/1.1\r\nHost: " + big + "\r\n", 200, "host", 259},
		{"method", strings.ToUpper(big) + " /up/a HTTP/1.1\r\nHost: h\r\n", 405, "method", 32},
	} {
		ua := "access-test/bound-" + strings.ReplaceAll(tc.name, " ", "-")
		if got := rawRequest(t, base, tc.req+"User-Agent: "+ua+"\r\nConnection: close\r\n\r\n"); got != tc.status {
			t.Fatalf("%s of %d bytes: status %d, want %d", tc.name, len(big), got, tc.status)
		}
		line := l.waitAccess(t, ua)
		v, _ := line[tc.field].(string)
		if len(v) != tc.max+len("...") || !strings.HasSuffix(v, "...") {
			t.Errorf("%s of %d bytes: logged as %d bytes, want its first %d and ...", tc.name, len(big), len(v), tc.max)
		}
	}
	for line := range strings.Lines(text.String()) {
		if len(line) > 4<<10 {
			t.Errorf("a text access line of %d bytes: %.200q...", len(line), line)
		}
	}

	// A path that decodes to control characters and invalid UTF-8.
	ua := "access-test/control"
	if got := rawRequest(t, base, "GET /up/a%0Aforged=1%1B[31m%00%FF HTTP/1.1\r\nHost: h\r\nUser-Agent: "+ua+"\r\nConnection: close\r\n\r\n"); got != 200 {
		t.Fatalf("a path with control characters: status %d, want 200", got)
	}
	if p := l.waitAccess(t, ua)["path"]; p != "/up/a\nforged=1\x1b[31m\x00\ufffd" {
		t.Errorf("JSON: path %q, want the decoded path (invalid UTF-8 replaced)", p)
	}
	var found bool
	for line := range strings.Lines(text.String()) {
		if strings.Contains(line, `\x1b`) || strings.Contains(line, "forged") {
			found = true
			if !strings.Contains(line, `path="/up/a\nforged=1\x1b[31m\x00\xff"`) || strings.ContainsAny(line, "\x1b\x00") {
				t.Errorf("text: the path not quoted in its line: %q", line)
			}
		}
		if strings.HasPrefix(line, "forged") {
			t.Errorf("text: a line forged by the path: %q", line)
		}
	}
	if !found {
		t.Errorf("text: no line for the path with control characters:\n%s", text.String())
	}

	// HEAD: net/http sends no body, whatever the gateway wrote.
	ua = "access-test/head-404"
	if r := accessReq(t, http.MethodHead, base+"/nowhere", "", ua); r.Status != 404 || r.Body != "" {
		t.Fatalf("HEAD /nowhere: %d %q, want 404 and no body", r.Status, r.Body)
	}
	wantAccess(t, "HEAD 404", l.waitAccess(t, ua), map[string]any{"method": "HEAD", "status": 404.0, "bytes": 0.0})
}

// A handler that panics before answering (here the WithWebSocket
// handler) is a server error: its access line and
// nylon_http_requests_total say 500, not 499 (the client did not leave;
// net/http closed its connection).
func TestAccessLogPanicIs500(t *testing.T) {
	e := newEnv(t)
	l := newJSONLog()
	reg := prometheus.NewRegistry()
	panics := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("handler bug") })
	gw, _ := e.gateway(yamlMessaging(""), gateway.WithRegisterer(reg), gateway.WithLogger(l.log),
		gateway.WithAccessLog(l.log), gateway.WithWebSocket(panics))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/ws", Function: "chat", Phases: protocol.PhaseSetWebSocket}}); err != nil {
		t.Fatal(err)
	}
	// A server of its own: net/http's panic report goes nowhere.
	srv := httptest.NewUnstartedServer(gw)
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	srv.Start()
	defer srv.Close()

	ua := "access-test/panic"
	if got := rawRequest(t, srv.URL, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nUser-Agent: "+ua+"\r\n\r\n"); got != 0 {
		t.Fatalf("a panicking handler answered %d, want the connection closed", got)
	}
	if line := l.waitAccess(t, ua); line["status"] != 500.0 || line["route"] != "/ws" {
		t.Errorf("access line %v, want status 500 on /ws", line)
	}
	if n := testutil.MetricSum(t, reg, "nylon_http_requests_total", map[string]string{"route": "/ws", "code": "500"}); n != 1 {
		t.Errorf("nylon_http_requests_total{route=/ws,code=500} = %v, want 1", n)
	}
}
