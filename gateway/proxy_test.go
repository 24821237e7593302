package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/protocol"
)

// rawDo sends req, written out by hand (a Go client would clean its path
// or refuse its headers), on a connection of its own and reads the answer.
func rawDo(t *testing.T, srvURL, req string) result {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: read body: %v", req, err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// rawUpstream serves each connection with h, which reads the request from
// br and writes whatever it likes to c.
func rawUpstream(t *testing.T, h func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				h(c, bufio.NewReader(c))
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// The path is made canonical before a route is chosen, and the upstream
// gets that path: dot segments (also percent-encoded) resolved, slashes
// merged. Before, "/public/../admin/x" matched "/public/*" and went
// upstream as it was, and an upstream that resolves it served /admin/x
// past the guard of the /admin/* route. A dot segment hidden behind an
// encoded slash has no faithful reading: 400.
func TestPathIsCanonicalBeforeRouting(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	guard := e.serve("guard", protocol.PhaseRequestFilter, func(*call) answer { return end(status(403), body("guarded")) })
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: guard, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: "/public/*", upstream: "` + up.URL + `"}
  - {path: "/admin/*", upstream: "` + up.URL + `", plugins: [guard]}
`)
	for _, c := range []struct {
		path   string
		status int
		sent   string // the request URI the upstream got
	}{
		{"/public/x", 200, "/public/x"},
		{"/public/../admin/x", 403, ""},
		{"/public/%2e%2e/admin/x", 403, ""},
		{"/public/.%2E/admin/x", 403, ""},
		{"//admin/x", 403, ""},
		{"/public/./x", 200, "/public/x"},
		{"/public//x", 200, "/public/x"},
		{"/public/x/..", 200, "/public/"},
		{"/public/x/", 200, "/public/x/"},
		{"/public/.well-known/x", 200, "/public/.well-known/x"},
		{"/public/a%2Fb", 200, "/public/a%2Fb"},
		{"/public/a%2Fb/../c", 200, "/public/c"},
		{"/public/x?q=/../admin", 200, "/public/x?q=/../admin"},
		{"/public/..%2Fadmin/x", 400, ""},
		{"/public/%2e%2e%2fadmin/x", 400, ""},
		{"/public/../../../etc/passwd", 404, ""},
	} {
		t.Run(c.path, func(t *testing.T) {
			up.last.Store(nil)
			r := rawDo(t, srv.URL, "GET "+c.path+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			wantStatus(t, r, c.status)
			got := up.last.Load()
			switch {
			case c.sent == "" && got != nil:
				t.Fatalf("the upstream got %q", got.RequestURI)
			case c.sent != "" && (got == nil || got.RequestURI != c.sent):
				t.Fatalf("the upstream got %v, want %q", got, c.sent)
			}
			if c.status == 400 {
				if p := r.problem(t); p.Type != gateway.ProblemBadRequest {
					t.Fatalf("problem %+v", p)
				}
			}
		})
	}
	if n := guard.count(); n != 4 {
		t.Fatalf("guard called %d times, want 4 (every path that resolves into /admin/)", n)
	}
}

// An h2c upgrade is not passed upstream: an upstream that switched would
// take any HTTP/2 request the client then sends, past the routes and their
// plugins (h2c smuggling). The upstream gets a plain request; a WebSocket
// upgrade still goes through (TestUpstreamBodyKeepsTheProxyBehaviour).
func TestUpstreamH2CUpgradeIsNotPassedOn(t *testing.T) {
	e := newEnv(t)
	seen := make(chan http.Header, 1)
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		seen <- req.Header
		if headerToken(req.Header, "Upgrade", "h2c") {
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
			_, _ = io.Copy(c, br) // the tunnel: whatever the client sends
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
	})
	_, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: "/public/*", upstream: "` + up + `"}
`)
	r := rawDo(t, srv.URL, "GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"+
		"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	if r.Status != 200 || r.Body != "plain" {
		t.Fatalf("answer %d %q, want the upstream's plain 200", r.Status, r.Body)
	}
	if h := <-seen; h.Get("Upgrade") != "" || h.Get("Connection") != "" || h.Get("Http2-Settings") != "" {
		t.Fatalf("the upstream got the upgrade: %v", h)
	}
}

func headerToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// An upstream answering with a status no HTTP response has (under 100:
// net/http panics writing it; over 599) is a broken upstream: 502, as
// nginx answers it. Before, "000" panicked in the handler (a stack trace
// in the server's log, the connection dropped) and "999" went to the
// client.
func TestUpstreamInvalidStatusIsBadGateway(t *testing.T) {
	e := newEnv(t)
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		code := strings.TrimPrefix(req.URL.Path, "/s/")
		_, _ = io.WriteString(c, "HTTP/1.1 "+code+" Whatever\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	_, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: "/s/*", upstream: "` + up + `"}
`)
	for code, want := range map[string]int{"000": 502, "099": 502, "600": 502, "999": 502, "200": 200, "418": 418, "599": 599} {
		t.Run(code, func(t *testing.T) {
			r := do(t, http.MethodGet, srv.URL+"/s/"+code, "")
			wantStatus(t, r, want)
			if want == 502 {
				if p := r.problem(t); p.Type != gateway.ProblemUpstream {
					t.Fatalf("problem %+v", p)
				}
			} else if r.Body != "ok" {
				t.Fatalf("body %q", r.Body)
			}
		})
	}
}

// A response_filter that turns an upgrade's 101 into another status
// refuses the upgrade: the client gets that status and no tunnel, and the
// upstream connection is closed. Before, the proxy wrote the filter's
// status and switched all the same, so a plugin's 403 opened the tunnel.
func TestResponseFilterRefusesAnUpgrade(t *testing.T) {
	e := newEnv(t)
	e.serve("deny", protocol.PhaseResponseFilter, func(c *call) answer {
		if c.Inv.Response.Status != http.StatusSwitchingProtocols {
			return next()
		}
		return next(status(403), respHeader("X-Denied", "yes"))
	})
	tunnel := make(chan string, 1)
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") == "" {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
		b, err := io.ReadAll(br) // until the gateway closes the connection
		tunnel <- fmt.Sprintf("%q %v", b, err)
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: deny, messaging: nats, per_phase: {response_filter: {}}}
routes:
  - {path: "/*", upstream: "` + up + `", plugins: [deny]}
`)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || len(b) != 0 || resp.Header.Get("X-Denied") != "yes" || resp.Header.Get("Upgrade") != "" {
		t.Fatalf("answer %d %v %q, want the filter's 403 without the upgrade's headers", resp.StatusCode, resp.Header, b)
	}
	if got := <-tunnel; got != `"" <nil>` {
		t.Fatalf("the upstream's connection: read %s, want it closed with nothing through", got)
	}
	// The client's connection is HTTP still: the next request is served.
	_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "plain" {
		t.Fatalf("next request on the connection: %d %q", resp.StatusCode, b)
	}
}

// An upstream that takes the request and never answers is given up after
// the route's response_header_timeout_ms: 504. Before, the request waited
// as long as the client did. The clock starts once the request is
// written: a client uploading slowly does not use it up.
func TestResponseHeaderTimeout(t *testing.T) {
	e := newEnv(t)
	hang := httptestHang(t)
	up := e.upstream()
	_, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: /hang, upstream: "` + hang + `", response_header_timeout_ms: 200}
  - {path: /upload, upstream: "` + up.URL + `", response_header_timeout_ms: 200}
`)
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	resp, err := client.Get(srv.URL + "/hang")
	if err != nil {
		t.Fatalf("no answer from a hung upstream: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 504 || time.Since(start) > 2*time.Second {
		t.Fatalf("status %d after %v, want 504 after about 200ms", resp.StatusCode, time.Since(start))
	}

	pr, pw := io.Pipe()
	go func() {
		for range 4 {
			time.Sleep(100 * time.Millisecond)
			_, _ = pw.Write([]byte("chunk"))
		}
		pw.Close()
	}()
	resp, err = client.Post(srv.URL+"/upload", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), strings.Repeat("chunk", 4)) {
		t.Fatalf("slow upload: %d %q, want the upstream's 200", resp.StatusCode, b)
	}
}

// What crosses the proxy: hop-by-hop headers (and those Connection names)
// stay on their hop both ways, X-Forwarded-* are the gateway's own (the
// client's are not trusted), Host is the upstream's.
func TestProxyHeaders(t *testing.T) {
	e := newEnv(t)
	seen := make(chan *http.Request, 1)
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		seen <- req
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"+
			"Proxy-Authenticate: Basic\r\nX-End: up\r\nContent-Length: 2\r\n\r\nok")
	})
	_, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: "/*", upstream: "` + up + `"}
`)
	r := rawDo(t, srv.URL, "GET /h HTTP/1.1\r\nHost: front.example\r\nConnection: X-Hop\r\nX-Hop: h\r\nKeep-Alive: 1\r\n"+
		"Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nTrailer: X-T\r\n"+
		"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nForwarded: for=9.9.9.9\r\nX-End: e\r\n\r\n")
	wantStatus(t, r, 200)
	for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Authenticate", "Connection"} {
		if v := r.Header.Get(k); v != "" {
			t.Errorf("the client got %s: %q", k, v)
		}
	}
	if r.Header.Get("X-End") != "up" {
		t.Errorf("the client lost X-End: %v", r.Header)
	}
	req := <-seen
	if req.Host != strings.TrimPrefix(up, "http://") {
		t.Errorf("upstream Host %q, want the upstream's", req.Host)
	}
	for k, want := range map[string]string{"X-Hop": "", "Keep-Alive": "", "Proxy-Authorization": "", "Proxy-Connection": "",
		"Trailer": "", "Forwarded": "", "Connection": "", "Te": "trailers", "X-End": "e",
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "front.example"} {
		if got := strings.Join(req.Header.Values(k), ","); got != want {
			t.Errorf("upstream %s: %q, want %q", k, got, want)
		}
	}
}

// Request framing reaches the upstream in one reading: both Content-Length
// and Transfer-Encoding is read chunked, conflicting lengths and unknown
// codings never get there, an obs-fold is unfolded.
func TestRequestFramingIsUnambiguousUpstream(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	_, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: "/*", upstream: "` + up.URL + `"}
`)
	for _, c := range []struct {
		name, req string
		status    int
		body      string // in the upstream's echo
	}{
		{"length and chunked", "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, `"body":"abc"`},
		{"two lengths", "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, ""},
		{"unknown coding", "POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, ""},
		{"obs-fold", "GET /f HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n", 200, `"X-Fold":["a b"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := up.hits.Load()
			r := rawDo(t, srv.URL, c.req)
			wantStatus(t, r, c.status)
			if c.body == "" && up.hits.Load() != before {
				t.Fatal("the upstream got the request")
			}
			if !strings.Contains(r.Body, c.body) {
				t.Fatalf("upstream echo %q lacks %q", r.Body, c.body)
			}
		})
	}
}

// A client that leaves cancels the upstream request.
func TestClientLeavingCancelsTheUpstream(t *testing.T) {
	e := newEnv(t)
	arrived, canceled := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
		close(canceled)
	}))
	t.Cleanup(up.Close)
	_, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: "/*", upstream: "` + up.URL + `"}
`)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/wait", nil)
	go func() {
		<-arrived
		cancel()
	}()
	if resp, err := oneShot().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want the client to give up", resp.StatusCode)
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request is still running after the client left")
	}
}
