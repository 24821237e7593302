package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/protocol"
)

func addHeader(k, v string) protocol.Op {
	return protocol.Op{Code: protocol.OpAddResponseHeader, Key: k, Value: []byte(v)}
}

// cookieUpstream is an origin that answers with two Set-Cookie values of
// its own, up=1 and up=2.
func cookieUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Add("Set-Cookie", "up=1")
		w.Header().Add("Set-Cookie", "up=2")
		_, _ = io.WriteString(w, "upstream body")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func wantValues(t *testing.T, r result, name string, want ...string) {
	t.Helper()
	if got := r.Header.Values(name); !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q (status %d, body %q)", name, got, want, r.Status, r.Body)
	}
}

// TestAddResponseHeaderOnEveryPath: op 402 appends a value wherever op 100
// applies (a request_filter Next's deferred header ops, a request_filter
// End, a function origin written straight from its ops or through the
// response phases, a response_filter over an upstream's headers), in op
// order and after the values already there; a response_body_filter's is
// ignored, as its set is, the headers being sent.
func TestAddResponseHeaderOnEveryPath(t *testing.T) {
	e := newEnv(t)
	up := cookieUpstream(t)
	e.serve("tag", protocol.PhaseRequestFilter, func(c *call) answer {
		return next(addHeader("Set-Cookie", "tag=1"))
	})
	e.serve("deny", protocol.PhaseRequestFilter, func(c *call) answer {
		return end(status(403), addHeader("Set-Cookie", "deny=1"), addHeader("Set-Cookie", "deny=2"), body("no"))
	})
	seen := make(chan []string, 10)
	e.serve("cookies", protocol.PhaseResponseFilter, func(c *call) answer {
		var vs []string
		for _, h := range c.Inv.Response.Headers {
			if h.Name == "Set-Cookie" {
				vs = append(vs, h.Value)
			}
		}
		seen <- vs
		return next(addHeader("Set-Cookie", "rf=1"))
	})
	e.serve("chunks", protocol.PhaseResponseBodyFilter, func(c *call) answer {
		return next(addHeader("Set-Cookie", "chunk=1"), body(string(c.Inv.Response.Body)))
	})
	e.serve("fn", protocol.PhaseRequestFilter, func(c *call) answer {
		return end(addHeader("Set-Cookie", "fn=1"), addHeader("Set-Cookie", "fn=2"), body("fn"))
	})
	e.serve("order", protocol.PhaseRequestFilter, func(c *call) answer {
		return end(
			addHeader("X-Add-Set", "1"), respHeader("X-Add-Set", "2"), // add then set: one value
			respHeader("X-Set-Add", "1"), addHeader("X-Set-Add", "2"), // set then add: two
			addHeader("X-Gone", "1"), addHeader("X-Gone", "2"), protocol.Op{Code: protocol.OpRemoveResponseHeader, Key: "x-gone"},
			addHeader("Content-Length", "99"), addHeader("X-Split", "a\r\nInjected: 1"), // refused
			body("order"))
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: tag, messaging: nats, per_phase: {request_filter: {}}}
  - {name: deny, messaging: nats, per_phase: {request_filter: {}}}
  - {name: cookies, messaging: nats, per_phase: {response_filter: {}}}
  - {name: chunks, messaging: nats, per_phase: {response_body_filter: {}}}
routes:
  - {path: /up, upstream: "` + up.URL + `", plugins: [tag, cookies]}
  - {path: /end, upstream: "` + up.URL + `", plugins: [tag, deny]}
  - {path: /chunks, upstream: "` + up.URL + `", plugins: [tag, chunks]}
  - {path: /fn, function: fn, plugins: [tag]}
  - {path: /fn-filtered, function: fn, plugins: [tag, cookies]}
  - {path: /order, function: order}
`)

	r := get(t, srv.URL+"/up")
	wantStatus(t, r, 200)
	wantValues(t, r, "Set-Cookie", "up=1", "up=2", "tag=1", "rf=1")
	if got := <-seen; !slices.Equal(got, []string{"up=1", "up=2", "tag=1"}) {
		t.Fatalf("response_filter saw Set-Cookie %q, want the upstream's and the request_filter's", got)
	}

	r = get(t, srv.URL+"/end")
	wantStatus(t, r, 403)
	wantValues(t, r, "Set-Cookie", "tag=1", "deny=1", "deny=2")

	r = get(t, srv.URL+"/chunks")
	wantStatus(t, r, 200)
	wantValues(t, r, "Set-Cookie", "up=1", "up=2", "tag=1")
	if r.Body != "upstream body" {
		t.Fatalf("body %q", r.Body)
	}

	r = get(t, srv.URL+"/fn")
	wantStatus(t, r, 200)
	wantValues(t, r, "Set-Cookie", "fn=1", "fn=2", "tag=1")

	r = get(t, srv.URL+"/fn-filtered")
	wantStatus(t, r, 200)
	wantValues(t, r, "Set-Cookie", "fn=1", "fn=2", "tag=1", "rf=1")
	if got := <-seen; !slices.Equal(got, []string{"fn=1", "fn=2", "tag=1"}) {
		t.Fatalf("response_filter saw Set-Cookie %q, want the function's and the request_filter's", got)
	}

	r = get(t, srv.URL+"/order")
	wantStatus(t, r, 200)
	wantValues(t, r, "X-Add-Set", "2")
	wantValues(t, r, "X-Set-Add", "1", "2")
	wantValues(t, r, "X-Gone")
	wantValues(t, r, "X-Split")
	wantValues(t, r, "Content-Length", "5")
}

// TestAddResponseHeaderEndToEnd runs real wasm guests on a real node behind
// the gateway: two Set-Cookie values reach the HTTP client, in order, from
// (a) a function origin that adds both (Response.AddHeader) and (b) a
// response_filter that adds one to an upstream's own two.
func TestAddResponseHeaderEndToEnd(t *testing.T) {
	w := newGuestWorld(t, map[string]string{
		"counter":  "platform/testdata/guests/counter",
		"sdkguest": "functions/examplestest/testdata/sdkguest",
	})
	up := cookieUpstream(t)
	cfg, err := gateway.ParseConfig("test.yaml", []byte(yamlMessaging("")+`
plugins:
  - name: cookies
    messaging: nats
    function: sdkguest
    per_phase: {response_filter: {}}
    config: {add_cookie: "rf=1; Path=/; HttpOnly"}
routes:
  - {path: /up, upstream: "`+up.URL+`", plugins: [cookies]}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv := w.gateway(t, *cfg, gateway.FunctionRoute{Path: "/c", Function: "counter", Phases: w.phases["counter"]})

	// (a) The function origin, written straight from its ops.
	r := get(t, srv.URL+"/c?cookie=session%3Dabc%3B%20Path%3D%2F&cookie=theme%3Ddark")
	wantStatus(t, r, 200)
	wantValues(t, r, "Set-Cookie", "session=abc; Path=/", "theme=dark")
	if r.Body != "ok" || r.Header.Get("X-Count") == "" {
		t.Fatalf("counter answered %q %v", r.Body, r.Header)
	}
	cookies := r.cookies()
	if len(cookies) != 2 || cookies[0].Name != "session" || cookies[0].Path != "/" || cookies[1].Name != "theme" || cookies[1].Value != "dark" {
		t.Fatalf("client parsed cookies %v", cookies)
	}

	// (b) An upstream's response, after the response_filter.
	r = get(t, srv.URL+"/up")
	wantStatus(t, r, 200)
	wantValues(t, r, "Set-Cookie", "up=1", "up=2", "rf=1; Path=/; HttpOnly")
	if r.Body != "upstream body" {
		t.Fatalf("body %q: the filter adds a header and nothing else", r.Body)
	}
}

// cookies parses the response's Set-Cookie headers as a client would.
func (r result) cookies() []*http.Cookie {
	return (&http.Response{Header: r.Header}).Cookies()
}

// guestWorld is a NATS server holding the registry and a real node serving
// real wasm guests, for gateways that call them.
type guestWorld struct {
	e      *env
	phases map[string]protocol.PhaseSet
}

// newGuestWorld deploys each guest package dir (built by testutil.Wasm)
// under its function name and starts a node serving them.
func newGuestWorld(t *testing.T, guests map[string]string) *guestWorld {
	t.Helper()
	e := newEnv(t)
	nodeNC, err := nats.Connect(e.url) // the node's own connection, as in a deployment
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodeNC.Close)
	return &guestWorld{e: e, phases: startNode(t, nodeNC, prometheus.NewRegistry(), guests)}
}

// gateway starts a gateway over cfg and routes, served over HTTP.
func (w *guestWorld) gateway(t *testing.T, cfg gateway.Config, routes ...gateway.FunctionRoute) *httptest.Server {
	t.Helper()
	gw, err := gateway.New(cfg, w.e.nc, gateway.WithRegisterer(w.e.reg),
		gateway.WithLogger(slog.New(slog.NewTextHandler(w.e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gw.SetFunctionRoutes(routes); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		srv.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = gw.Close(cctx)
	})
	return srv
}
