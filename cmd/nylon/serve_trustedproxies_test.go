package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// --trusted-proxies and NYLON_TRUSTED_PROXIES (comma-separated) fill
// serveConfig.TrustedProxies; none by default.
func TestServeTrustedProxiesFlag(t *testing.T) {
	if got := parseServeFlags(t, nil).TrustedProxies; got != nil {
		t.Errorf("default: %q, want none", got)
	}
	env := map[string]string{"NYLON_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8,192.0.2.7"}
	if got := parseServeFlags(t, env).TrustedProxies; !slices.Equal(got, []string{"10.0.0.0/8", "fd00::/8", "192.0.2.7"}) {
		t.Errorf("from NYLON_TRUSTED_PROXIES: %q", got)
	}
	if got := parseServeFlags(t, env, "--trusted-proxies", "::1").TrustedProxies; !slices.Equal(got, []string{"::1"}) {
		t.Errorf("--trusted-proxies over the variable: %q, want [::1]", got)
	}
}

// A bad entry is a usage error (exit 2) naming the flag and the entry,
// before anything starts.
func TestServeRejectsBadTrustedProxies(t *testing.T) {
	expectServeRefuses(t, []refusedServe{
		{args: []string{"--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"}, want: `--trusted-proxies: "10.0.0.0/33": not an IP address or CIDR prefix`},
		{args: []string{"--trusted-proxies", "lb.internal"}, want: `--trusted-proxies: "lb.internal"`},
		{args: []string{"--trusted-proxies", "fe80::1%eth0"}, want: `--trusted-proxies: "fe80::1%eth0": an IPv6 zone is not allowed`},
		{env: map[string]string{"NYLON_TRUSTED_PROXIES": "10.0.0.1/8x"}, want: `--trusted-proxies: "10.0.0.1/8x"`},
	})
}

// Behind --trusted-proxies, a function reads the client address
// X-Forwarded-For names, over HTTP and in WebSocket events alike.
func TestServeTrustedProxies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := startCmd(t, serveArgs(t, "--trusted-proxies", "127.0.0.1/32,10.0.0.0/8")...)
	b.waitLine(t, readyLine)
	admin, gw := b.waitLine(t, adminLine), b.waitLine(t, gatewayLine)
	defer b.stop(t)
	// The start-up log names who may set the client address.
	if want := `msg="gateway: client addresses from X-Forwarded-For of trusted proxies" trusted_proxies=127.0.0.1/32,10.0.0.0/8`; !strings.Contains(b.stderr.String(), want) {
		t.Errorf("serve's log lacks %s:\n%s", want, b.stderr.String())
	}
	deployModule(t, admin, "sdk", testutil.Wasm(t, "functions/examplestest/testdata/sdkguest"), url.Values{"route": {"/client-ip"}})

	xff := http.Header{"X-Forwarded-For": {"6.6.6.6, 203.0.113.9", "10.0.0.2"}}
	var body string
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		var code int
		if code, _, body = get(t, gw+"/client-ip", xff); code != http.StatusOK {
			return fmt.Errorf("GET /client-ip: %d %s", code, body)
		}
		return nil
	})
	if body != "203.0.113.9" {
		t.Errorf("the function read client IP %q, want 203.0.113.9 (X-Forwarded-For behind the trusted peer)", body)
	}

	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+"/client-ip",
		&websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {"198.51.100.4"}, "X-Forwarded-Proto": {"https"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(msg); got != "client_ip 198.51.100.4 https" {
		t.Errorf("WebSocket open event: %q, want client_ip 198.51.100.4 https (X-Forwarded-* of the trusted peer)", got)
	}
}
