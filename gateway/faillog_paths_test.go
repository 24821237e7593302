package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// cutUpstream is an upstream that announces 1000 bytes of body, sends a
// few and closes the connection: it dies in the middle of its body.
func cutUpstream(t *testing.T) string {
	t.Helper()
	up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(ln) }()
	t.Cleanup(func() { _ = up.Close() })
	return "http://" + ln.Addr().String()
}

// An upstream that dies in the middle of its body, on a route with a
// response_body_filter, aborts the response as it does without one: the
// client must not get the first bytes as a complete (chunked) body, and
// the request's one line is a WARN with aborted=true. Before, the body
// filter took the transport's io.ErrUnexpectedEOF for the end of the body:
// the client got "partial" as a whole 200 response and the failure was a
// DEBUG line, as if the client had erred.
func TestUpstreamFailingMidBodyThroughBodyFilter(t *testing.T) {
	e := newEnv(t)
	e.serve("pass", protocol.PhaseResponseBodyFilter, func(*call) answer { return next() })
	var buf testutil.SyncBuffer
	_, srv := e.gateway(yamlMessaging("")+`
plugins:
  - {name: pass, messaging: nats, per_phase: {response_body_filter: {}}}
routes:
  - {path: /cut, upstream: "`+cutUpstream(t)+`", plugins: [pass]}
`, jsonLogger(&buf))
	if resp, err := oneShot().Get(srv.URL + "/cut"); err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Fatalf("the cut response read to the end as a whole response: %d %q", resp.StatusCode, b)
		}
	}
	_, l := waitLoud(t, &buf, 1)
	if len(l) != 1 {
		t.Fatalf("%d WARN/ERROR lines for one aborted response, want 1: %v", len(l), l)
	}
	wantFields(t, l[0], map[string]string{"level": "WARN", "msg": "gateway: request failed", "route": "/cut",
		"status": "200", "aborted": "true", "kind": "Upstream"})
}

// Every way a request fails logs exactly one WARN or ERROR line; answers
// that are no failure of the gateway's (a plugin's chosen 4xx, a body too
// large, a route not found, a client that left) log none above
// DEBUG.
func TestFailurePathsLogOneLineEach(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	down := e.upstream()
	downURL := down.URL
	down.Close()
	hang := httptestHang(t)
	e.serve("nonext", protocol.PhaseRequestFilter, func(*call) answer { return next() })
	e.serve("teapot", protocol.PhaseRequestFilter, func(*call) answer {
		return answer{Action: protocol.ActionError, Error: "no coffee", Ops: []protocol.Op{status(418)}}
	})
	e.serve("end500", protocol.PhaseRequestFilter, func(*call) answer { return end(status(500), body("chosen")) })
	e.serve("fn", protocol.PhaseRequestFilter, func(*call) answer { return end(body("fn")) })
	block := make(chan struct{})
	e.serve("blocks", protocol.PhaseRequestFilter, func(*call) answer { <-block; return next() })
	t.Cleanup(func() { close(block) }) // before the service stops (cleanups run last first)
	var buf testutil.SyncBuffer
	transport := &http.Transport{ResponseHeaderTimeout: 100 * time.Millisecond}
	t.Cleanup(transport.CloseIdleConnections)
	_, srv := e.gateway(yamlMessaging("")+`
plugins:
  - {name: ghostresp, messaging: nats, per_phase: {response_filter: {timeout_ms: 200}}}
  - {name: teapot, messaging: nats, per_phase: {request_filter: {}}}
  - {name: end500, messaging: nats, per_phase: {request_filter: {}}}
  - {name: blocks, messaging: nats, per_phase: {request_filter: {timeout_ms: 5000}}}
routes:
  - {path: /fn-down, function: ghostfn}
  - {path: /fn-next, function: nonext}
  - {path: /fn-resp, function: fn, plugins: [ghostresp]}
  - {path: /up-down, upstream: "`+downURL+`"}
  - {path: /up-hang, upstream: "`+hang+`"}
  - {path: /up-resp, upstream: "`+up.URL+`", plugins: [ghostresp]}
  - {path: /teapot, upstream: "`+up.URL+`", plugins: [teapot]}
  - {path: /end500, upstream: "`+up.URL+`", plugins: [end500]}
  - {path: /small, upstream: "`+up.URL+`", max_body_bytes: 4}
  - {path: /small-buffered, upstream: "`+up.URL+`", plugins: [teapot], max_body_bytes: 4}
  - {path: /blocks, upstream: "`+up.URL+`", plugins: [blocks]}
`, jsonLogger(&buf), gateway.WithTransport(transport))

	for _, c := range []struct {
		name, method, path, body string
		status                   int
		kind                     string // "": no line above DEBUG
	}{
		{"origin function not served", "GET", "/fn-down", "", 503, "NoResponder"},
		{"origin function not ending", "GET", "/fn-next", "", 502, "OriginNotEnded"},
		{"response_filter after a function", "GET", "/fn-resp", "", 503, "NoResponder"},
		{"upstream down", "GET", "/up-down", "", 502, "Upstream"},
		{"upstream timing out", "GET", "/up-hang", "", 504, "UpstreamTimeout"},
		{"response_filter after an upstream", "GET", "/up-resp", "", 503, "NoResponder"},
		{"a plugin's chosen 4xx", "GET", "/teapot", "", 418, ""},
		{"request_filter End with 500", "GET", "/end500", "", 500, ""},
		{"streamed body too large", "POST", "/small", "0123456789", 413, ""},
		{"buffered body too large", "POST", "/small-buffered", "0123456789", 413, ""},
		{"no route", "GET", "/nowhere", "", 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, srv.URL+c.path, c.body)
			wantStatus(t, r, c.status)
			if c.kind == "" {
				time.Sleep(100 * time.Millisecond)
				if l := loud(parseLogs(t, buf.Take())); len(l) != 0 {
					t.Fatalf("%d WARN/ERROR lines, want none: %v", len(l), l)
				}
				return
			}
			_, l := waitLoud(t, &buf, 1)
			if len(l) != 1 {
				t.Fatalf("%d WARN/ERROR lines for one failed request, want 1: %v", len(l), l)
			}
			wantFields(t, l[0], map[string]string{"msg": "gateway: request failed", "route": c.path,
				"status": strconv.Itoa(c.status), "kind": c.kind})
		})
	}

	t.Run("client leaves during a call", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/blocks", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("status %d, want the client to give up", resp.StatusCode)
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if l := loud(parseLogs(t, buf.Take())); len(l) != 0 {
			t.Fatalf("%d WARN/ERROR lines for a client that left, want none: %v", len(l), l)
		}
	})
}

// httptestHang is an upstream that accepts connections and never answers.
func httptestHang(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString(0) // until the gateway gives up
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// A streamed request body (no Content-Length) over max_body_bytes is the
// client's to fix: a 413 and no line above DEBUG.
func TestStreamedBodyTooLargeLogsNoWarning(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	var buf testutil.SyncBuffer
	_, srv := e.gateway(yamlMessaging("")+`
routes:
  - {path: /small, upstream: "`+up.URL+`", max_body_bytes: 4}
`, jsonLogger(&buf))
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("0123456789"))
		pw.Close()
	}()
	req, err := http.NewRequest("POST", srv.URL+"/small", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	time.Sleep(100 * time.Millisecond)
	if l := loud(parseLogs(t, buf.Take())); len(l) != 0 {
		t.Fatalf("%d WARN/ERROR lines, want none: %v", len(l), l)
	}
}

// The upstream's body goes through upstreamBody (which remembers a
// mid-body failure for the request's line) without changing what the
// reverse proxy does with it: a streamed (SSE) response is flushed as it
// comes, trailers arrive, HEAD, 204 and 304 carry no body, and an upgrade
// (101) still hands the proxy the upstream's connection. None logs a line
// above DEBUG.
func TestUpstreamBodyKeepsTheProxyBehaviour(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release: // the client has read the first event
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "data: 2\n\n")
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("/304", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(304) })
	mux.HandleFunc("/head", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, "hello")
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		_ = c.Write(r.Context(), typ, append([]byte("echo:"), msg...))
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
	up := httptest.NewServer(mux)
	t.Cleanup(up.Close)
	var buf testutil.SyncBuffer
	_, srv := e.gateway(yamlMessaging("")+`
routes:
  - {path: "/*", upstream: "`+up.URL+`"}
`, jsonLogger(&buf))

	t.Run("sse flushed as it comes", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/sse")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n') // before the upstream ends
		if err != nil || line != "data: 1\n" {
			t.Fatalf("first event %q, %v", line, err)
		}
		close(release)
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "\ndata: 2\n\n" {
			t.Fatalf("rest %q, %v", rest, err)
		}
	})
	t.Run("trailers", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/trailer")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "body" || resp.Trailer.Get("X-Sum") != "42" {
			t.Fatalf("body %q, trailer %v, %v", b, resp.Trailer, err)
		}
	})
	t.Run("no body", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			status       int
		}{{"GET", "/204", 204}, {"GET", "/304", 304}, {"HEAD", "/head", 200}} {
			r := do(t, c.method, srv.URL+c.path, "")
			if r.Status != c.status || r.Body != "" {
				t.Fatalf("%s %s: %d %q, want %d and no body", c.method, c.path, r.Status, r.Body, c.status)
			}
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		if got := wsRoundTrip(t, srv.URL+"/ws", "hi"); got != "echo:hi" {
			t.Fatalf("echo %q, want echo:hi", got)
		}
	})
	time.Sleep(100 * time.Millisecond)
	if l := loud(parseLogs(t, buf.Bytes())); len(l) != 0 {
		t.Fatalf("%d WARN/ERROR lines, want none: %v", len(l), l)
	}
}
