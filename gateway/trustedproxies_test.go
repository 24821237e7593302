package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// proxyWorld is a NATS server with a real node serving the SDK test guest
// as "sdk" (its /client-ip answers the client address it read, over HTTP
// and in its WebSocket open event), and an upstream that records what it
// is sent. Its gateways route /client-ip to the function, /up/* to the
// upstream and /x behind a plugin no node serves (a dead letter).
type proxyWorld struct {
	e      *env
	phases protocol.PhaseSet
	up     *upstream
}

func newProxyWorld(t *testing.T) *proxyWorld {
	t.Helper()
	e := newEnv(t)
	nodeNC, err := nats.Connect(e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodeNC.Close)
	phases := startNode(t, nodeNC, prometheus.NewRegistry(), map[string]string{"sdk": "functions/examplestest/testdata/sdkguest"})
	return &proxyWorld{e: e, phases: phases["sdk"], up: e.upstream()}
}

// gateway builds a gateway trusting proxies, served on 127.0.0.1 (and,
// with v6, on [::1] too: the second URL). Upgrade requests go to a
// handler that answers the RouteInfo.ClientIP the WebSocket edge gets.
func (w *proxyWorld) gateway(t *testing.T, v6 bool, proxies ...string) (v4URL, v6URL string) {
	t.Helper()
	yaml := yamlMessaging("") + deadLetterRoute + `  - {path: "/up/*", upstream: "` + w.up.URL + `"}
`
	edge := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ri, ok := gateway.RouteOf(r.Context())
		if !ok {
			http.Error(rw, "no route info", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(rw, "edge "+ri.ClientIP+" "+ri.Scheme)
	})
	gw, srv := w.e.gateway(yaml, gateway.WithRegisterer(prometheus.NewRegistry()), gateway.WithWebSocket(edge),
		gateway.WithTrustedProxies(proxies...))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/client-ip", Function: "sdk", Phases: w.phases},
		{Path: "/echo", Function: "sdk", Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter)}}); err != nil {
		t.Fatal(err)
	}
	// The node may not serve the function yet.
	eventually(t, func() error {
		if r := get(t, srv.URL+"/client-ip"); r.Status != http.StatusOK {
			return fmt.Errorf("/client-ip: %d %s", r.Status, r.Body)
		}
		return nil
	})
	if !v6 {
		return srv.URL, ""
	}
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("listen on [::1] (IPv6 loopback): %v", err)
	}
	srv6 := &httptest.Server{Listener: ln, Config: &http.Server{Handler: gw}}
	srv6.Start()
	t.Cleanup(srv6.Close)
	return srv.URL, srv6.URL
}

// send makes a request with each xff as one X-Forwarded-For line, and
// extra header pairs.
func send(t *testing.T, url string, xff []string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if xff != nil {
		req.Header["X-Forwarded-For"] = xff
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// clientIPOf is the client address the function read for a request with
// the X-Forwarded-For lines xff.
func clientIPOf(t *testing.T, base string, xff ...string) string {
	t.Helper()
	r := send(t, base+"/client-ip", xff)
	wantStatus(t, r, http.StatusOK)
	return r.Body
}

// upstreamGot returns the X-Forwarded-* and Forwarded headers the
// upstream received for a request with xff and extra headers.
func (w *proxyWorld) upstreamGot(t *testing.T, base string, xff []string, hdr ...string) http.Header {
	t.Helper()
	wantStatus(t, send(t, base+"/up/a", xff, hdr...), http.StatusOK)
	last := w.up.last.Load()
	out := http.Header{}
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
		if v, ok := last.Header[k]; ok {
			out[k] = v
		}
	}
	return out
}

// upgradeClientIP is the client address the WebSocket edge is handed for
// an upgrade request with xff.
func upgradeClientIP(t *testing.T, base string, xff ...string) string {
	t.Helper()
	ip, _ := upgradeRoute(t, base, xff)
	return ip
}

// upgradeRoute is the client address and scheme the WebSocket edge is
// handed (RouteInfo) for an upgrade request with xff and hdr.
func upgradeRoute(t *testing.T, base string, xff []string, hdr ...string) (ip, scheme string) {
	t.Helper()
	r := send(t, base+"/client-ip", xff, append([]string{"Connection", "Upgrade", "Upgrade", "websocket"}, hdr...)...)
	wantStatus(t, r, http.StatusOK)
	rest, ok := strings.CutPrefix(r.Body, "edge ")
	if !ok {
		t.Fatalf("upgrade request not handed to the WebSocket edge: %q", r.Body)
	}
	ip, scheme, _ = strings.Cut(rest, " ")
	return ip, scheme
}

// Behind a trusted proxy the scheme functions read (and the WebSocket
// edge gets) is the one X-Forwarded-Proto names, as a balancer that
// terminates TLS sends it; only a single "http" or "https" is believed,
// and only from a trusted peer.
func TestTrustedProxyScheme(t *testing.T) {
	w := newProxyWorld(t)
	trusting, _ := w.gateway(t, false, "127.0.0.1")
	untrusting, _ := w.gateway(t, false)
	for _, tc := range []struct {
		name string
		base string
		hdr  []string
		want string
	}{
		{"none: the connection's", trusting, nil, "http"},
		{"https from a trusted balancer", trusting, []string{"X-Forwarded-Proto", "https"}, "https"},
		{"in any case", trusting, []string{"X-Forwarded-Proto", "HTTPS"}, "https"},
		{"http", trusting, []string{"X-Forwarded-Proto", "http"}, "http"},
		{"a list is not believed", trusting, []string{"X-Forwarded-Proto", "https, http"}, "http"},
		{"two lines are not believed", trusting, []string{"X-Forwarded-Proto", "https", "X-Forwarded-Proto", "https"}, "http"},
		{"another scheme is not believed", trusting, []string{"X-Forwarded-Proto", "wss"}, "http"},
		{"an untrusted peer's is ignored", untrusting, []string{"X-Forwarded-Proto", "https"}, "http"},
	} {
		r := send(t, tc.base+"/echo", nil, tc.hdr...)
		wantStatus(t, r, http.StatusOK)
		var e struct {
			Scheme string `json:"scheme"`
		}
		if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
			t.Fatalf("%s: /echo answered %q: %v", tc.name, r.Body, err)
		}
		if e.Scheme != tc.want {
			t.Errorf("%s: the function read scheme %q, want %q", tc.name, e.Scheme, tc.want)
		}
		if _, got := upgradeRoute(t, tc.base, nil, tc.hdr...); got != tc.want {
			t.Errorf("%s: the WebSocket edge got scheme %q, want %q", tc.name, got, tc.want)
		}
	}
}

func wantHeader(t *testing.T, what string, got http.Header, want map[string][]string) {
	t.Helper()
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s: upstream got %s %q, want %q (all: %v)", what, k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: upstream got %v, want only %v", what, got, want)
	}
}

// Behind a trusted proxy the function reads, and the WebSocket edge and
// the dead letter get, the rightmost untrusted X-Forwarded-For entry; the
// upstream gets the chain with the peer appended and the proxy's
// X-Forwarded-Proto and -Host, but never a Forwarded header.
func TestTrustedProxyClientIP(t *testing.T) {
	w := newProxyWorld(t)
	base, base6 := w.gateway(t, true, "127.0.0.1", "10.0.0.0/8", "::1", "2001:db8:1::/48")

	for _, tc := range []struct {
		name string
		xff  []string
		want string
	}{
		{"no header: the peer", nil, "127.0.0.1"},
		{"the rightmost untrusted entry", []string{"203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		{"an entry spoofed left of it is not reached", []string{"6.6.6.6, 203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		{"several lines are one list", []string{"6.6.6.6, 203.0.113.9", "10.0.0.3", "10.0.0.2"}, "203.0.113.9"},
		{"every entry trusted: the leftmost", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbage rightmost: the peer", []string{"203.0.113.9, garbage"}, "127.0.0.1"},
		{"garbage past trusted entries: the last good one", []string{"203.0.113.9, not-an-ip, 10.0.0.2"}, "10.0.0.2"},
		{"IPv6 entries", []string{"2001:db8::7, 2001:db8:1::2"}, "2001:db8::7"},
		{"a port and brackets", []string{"[2001:db8::7]:443, 10.0.0.2:8080"}, "2001:db8::7"},
	} {
		if got := clientIPOf(t, base, tc.xff...); got != tc.want {
			t.Errorf("%s: the function read client IP %q, want %q", tc.name, got, tc.want)
		}
		if got := upgradeClientIP(t, base, tc.xff...); got != tc.want {
			t.Errorf("%s: the WebSocket edge got client IP %q, want %q", tc.name, got, tc.want)
		}
	}

	// An IPv6 peer.
	if got := clientIPOf(t, base6, "2001:db8::7, 2001:db8:1::2"); got != "2001:db8::7" {
		t.Errorf("IPv6 peer ::1: the function read %q, want 2001:db8::7", got)
	}
	if got := clientIPOf(t, base6); got != "::1" {
		t.Errorf("IPv6 peer ::1 without the header: the function read %q, want ::1", got)
	}

	host := strings.TrimPrefix(base, "http://")
	wantHeader(t, "a chain", w.upstreamGot(t, base, []string{"203.0.113.9, 10.0.0.2"},
		"X-Forwarded-Proto", "https", "X-Forwarded-Host", "app.example.com", "Forwarded", "for=6.6.6.6"),
		map[string][]string{"X-Forwarded-For": {"203.0.113.9, 10.0.0.2, 127.0.0.1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.example.com"}})
	wantHeader(t, "several lines", w.upstreamGot(t, base, []string{"6.6.6.6", "203.0.113.9, 10.0.0.2"}),
		map[string][]string{"X-Forwarded-For": {"6.6.6.6, 203.0.113.9, 10.0.0.2, 127.0.0.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {host}})
	wantHeader(t, "no chain", w.upstreamGot(t, base, nil),
		map[string][]string{"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {host}})
	wantHeader(t, "IPv6 peer", w.upstreamGot(t, base6, []string{"2001:db8::7"}),
		map[string][]string{"X-Forwarded-For": {"2001:db8::7, ::1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {strings.TrimPrefix(base6, "http://")}})

	// The dead letter carries the request as the plugin was sent it.
	wantStatus(t, send(t, base+"/x", []string{"203.0.113.9, 10.0.0.2"}), http.StatusServiceUnavailable)
	if got := deadLetterClientIP(t, w.e); got != "203.0.113.9" {
		t.Errorf("dead letter: client IP %q, want 203.0.113.9", got)
	}
}

// deadLetterClientIP waits for the one dead letter of e's stream and
// returns the client IP of the request it holds.
func deadLetterClientIP(t *testing.T, e *env) string {
	t.Helper()
	js := testutil.JetStream(t, e.nc)
	var letters []gateway.DeadLetter
	eventually(t, func() error {
		var err error
		letters, err = gateway.ListDLQ(context.Background(), js, prefix, 10)
		if err == nil && len(letters) == 0 {
			err = errors.New("no dead letter yet")
		}
		return err
	})
	var req protocol.PluginRequest
	if err := protocol.DecodeRequest(letters[0].Payload, &req); err != nil {
		t.Fatal(err)
	}
	var inv protocol.Invocation
	if err := protocol.DecodeInvocation(req.Data, &inv); err != nil {
		t.Fatal(err)
	}
	return inv.Request.ClientIP
}

// From a peer that is not trusted (or with no proxies configured, the
// default), X-Forwarded-* are ignored: the client is the peer, and the
// upstream gets the peer alone, this hop's Proto and Host, no Forwarded.
func TestUntrustedPeerCannotSetClientIP(t *testing.T) {
	w := newProxyWorld(t)
	for _, proxies := range [][]string{nil, {"10.0.0.0/8", "2001:db8:1::/48"}} {
		base, _ := w.gateway(t, false, proxies...)
		spoof := []string{"203.0.113.9", "10.0.0.2"}
		if got := clientIPOf(t, base, spoof...); got != "127.0.0.1" {
			t.Errorf("proxies %q: the function read client IP %q from a spoofed X-Forwarded-For, want the peer 127.0.0.1", proxies, got)
		}
		if got := upgradeClientIP(t, base, spoof...); got != "127.0.0.1" {
			t.Errorf("proxies %q: the WebSocket edge got client IP %q, want the peer 127.0.0.1", proxies, got)
		}
		wantHeader(t, fmt.Sprintf("proxies %q", proxies), w.upstreamGot(t, base, spoof,
			"X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example.com", "Forwarded", "for=6.6.6.6;proto=https"),
			map[string][]string{"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {strings.TrimPrefix(base, "http://")}})
	}
}

// A bad entry fails New, naming it.
func TestWithTrustedProxiesRejectsBadEntries(t *testing.T) {
	e := newEnv(t)
	for _, bad := range []string{"10.0.0.0/33", "lb.internal", "", "fe80::1%eth0"} {
		_, err := gateway.New(gateway.Config{}, e.nc, gateway.WithTrustedProxies("10.0.0.0/8", bad))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("trusted proxies: %q", bad)) {
			t.Errorf("WithTrustedProxies(%q): %v, want an error naming it", bad, err)
		}
	}
}

// The X-Forwarded-* spelled with '_' for '-' never reach an upstream,
// from any peer: CGI-style upstreams (WSGI, Rack, PHP) read
// X_Forwarded_For as X-Forwarded-For, so a client's would stand beside the
// gateway's.
func TestUpstreamGetsNoForwardedLookalikes(t *testing.T) {
	w := newProxyWorld(t)
	for _, proxies := range [][]string{nil, {"127.0.0.1"}} {
		base, _ := w.gateway(t, false, proxies...)
		wantStatus(t, send(t, base+"/up/a", nil, "X_Forwarded_For", "6.6.6.6", "x-forwarded_proto", "https",
			"X_FORWARDED_HOST", "evil.example.com", "X_Custom", "kept"), http.StatusOK)
		got := w.up.last.Load().Header
		for k, v := range got {
			if n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); strings.HasPrefix(n, "x-forwarded-") && strings.Contains(k, "_") {
				t.Errorf("proxies %q: the upstream got %s: %q", proxies, k, v)
			}
		}
		if got.Get("X_Custom") != "kept" {
			t.Errorf("proxies %q: another header with '_' was dropped: %v", proxies, got)
		}
		if xff := got.Values("X-Forwarded-For"); !slices.Equal(xff, []string{"127.0.0.1"}) {
			t.Errorf("proxies %q: X-Forwarded-For %q, want the peer alone", proxies, xff)
		}
	}
}
