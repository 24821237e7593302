package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/ws"
)

// The --ws-* flags and their NYLON_WS_* variables reach ws.Config; without
// them the edge gets the ws package's defaults, as before the flags.
func TestServeWSFlags(t *testing.T) {
	edge := func(c *serveConfig) ws.Config {
		var w ws.Config
		c.WS.apply(&w)
		return w
	}
	got := edge(parseServeFlags(t, nil))
	if got.OriginPatterns != nil || got.MaxConnections != ws.DefaultMaxConnections || got.MaxMessageSize != ws.DefaultMaxMessageSize ||
		got.EventTimeout != ws.DefaultEventTimeout || got.MaxRooms != ws.DefaultMaxRooms || got.PingInterval != ws.DefaultPingInterval {
		t.Errorf("defaults: %+v, want the ws package's", got)
	}
	env := map[string]string{
		"NYLON_WS_ORIGINS":           "app.example.com, *.example.org",
		"NYLON_WS_MAX_CONNECTIONS":   "500",
		"NYLON_WS_MAX_MESSAGE_BYTES": "1024",
		"NYLON_WS_EVENT_TIMEOUT":     "2s",
		"NYLON_WS_MAX_ROOMS":         "8",
		"NYLON_WS_PING_INTERVAL":     "-1s",
	}
	got = edge(parseServeFlags(t, env))
	if !slices.Equal(got.OriginPatterns, []string{"app.example.com", "*.example.org"}) || got.MaxConnections != 500 ||
		got.MaxMessageSize != 1024 || got.EventTimeout != 2*time.Second || got.MaxRooms != 8 || got.PingInterval != -time.Second {
		t.Errorf("from NYLON_WS_*: %+v", got)
	}
	got = edge(parseServeFlags(t, env, "--ws-origins", "https://app.example.com", "--ws-max-connections", "0",
		"--ws-max-message-bytes", "0", "--ws-event-timeout", "0", "--ws-max-rooms", "0", "--ws-ping-interval", "0"))
	if !slices.Equal(got.OriginPatterns, []string{"https://app.example.com"}) || got.MaxConnections != 0 ||
		got.MaxMessageSize != 0 || got.EventTimeout != 0 || got.MaxRooms != 0 || got.PingInterval != 0 {
		t.Errorf("zeros over NYLON_WS_*: %+v, want zeros (the ws package's defaults)", got)
	}
}

// A bad --ws-* value is a usage error (exit 2) naming the flag, before
// anything starts; a bad origin pattern included, which the WebSocket
// library would otherwise only fail on at each handshake, as a 403.
func TestServeRejectsBadWSFlags(t *testing.T) {
	expectServeRefuses(t, []refusedServe{
		{args: []string{"--ws-origins", "app.example.com,[a-"}, want: `--ws-origins: "[a-": syntax error in pattern`},
		{env: map[string]string{"NYLON_WS_ORIGINS": `app\`}, want: `--ws-origins: "app\\"`},
		{args: []string{"--ws-max-connections", "-1"}, want: "--ws-max-connections: -1 is negative"},
		{env: map[string]string{"NYLON_WS_MAX_CONNECTIONS": "lots"}, want: `NYLON_WS_MAX_CONNECTIONS="lots": not an integer`},
		{args: []string{"--ws-max-message-bytes", "-1"}, want: "--ws-max-message-bytes: -1: want 1 to 67108864"},
		{args: []string{"--ws-max-message-bytes", "67108865"}, want: "--ws-max-message-bytes: 67108865"},
		{args: []string{"--ws-event-timeout", "-1s"}, want: "--ws-event-timeout: -1s is negative"},
		{env: map[string]string{"NYLON_WS_EVENT_TIMEOUT": "soon"}, want: `NYLON_WS_EVENT_TIMEOUT="soon": not a duration`},
		{args: []string{"--ws-max-rooms", "-3"}, want: "--ws-max-rooms: -3 is negative"},
		{args: []string{"--env", "prod", "--ws-origins", "app.example.com,*"}, want: `refusing to start: --ws-origins "*" accepts every origin`},
		{args: []string{"--env", "prod", "--ws-origins", "*://*"}, want: `refusing to start: --ws-origins "*://*" accepts every origin`},
	})
}

// dialOrigin opens a WebSocket as a browser on the page origin would; it
// returns the handshake's HTTP status (101 when it succeeded).
func dialOrigin(ctx context.Context, t *testing.T, u, origin string) (*websocket.Conn, int) {
	t.Helper()
	var h http.Header
	if origin != "" {
		h = http.Header{"Origin": {origin}}
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s (Origin %q): %v", u, origin, err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, resp.StatusCode
}

// By default the edge accepts only the request's own host as Origin: a
// page on another host gets 403. --ws-origins names the hosts that may;
// --ws-max-connections and --ws-max-message-bytes bound the edge serve
// builds.
func TestServeWSOriginsAndLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const app = "https://app.example.com"

	// Without the flags, on a route no node serves: the Origin check
	// comes before the function.
	cfgFile := writeGatewayConfig(t, "routes:\n  - {path: /ghost, function: ghost, websocket: true}\n")
	plain := startCmd(t, serveArgs(t, "--role", "gateway", "--gateway-config", cfgFile)...)
	plain.waitLine(t, readyLine)
	if _, code := dialOrigin(ctx, t, "ws"+strings.TrimPrefix(plain.waitLine(t, gatewayLine), "http")+"/ghost", app); code != http.StatusForbidden {
		t.Errorf("Origin %s without --ws-origins: %d, want 403", app, code)
	}
	plain.stop(t)

	b := startCmd(t, serveArgs(t, "--ws-origins", "app.example.com", "--ws-max-connections", "1", "--ws-max-message-bytes", "64")...)
	b.waitLine(t, readyLine)
	admin, gw := b.waitLine(t, adminLine), b.waitLine(t, gatewayLine)
	defer b.stop(t)
	deployModule(t, admin, "chat", testutil.Wasm(t, "functions/examples/chat"), url.Values{"route": {"/chat/ws"}})
	wsURL := "ws" + strings.TrimPrefix(gw, "http") + "/chat/ws?room=origins&name="

	// 404 until the route of the new deployment reaches the gateway.
	eve := http.StatusNotFound
	testutil.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if _, eve = dialOrigin(ctx, t, wsURL+"eve", "https://evil.example.com"); eve == http.StatusNotFound {
			return &statusError{eve}
		}
		return nil
	})
	if eve != http.StatusForbidden {
		t.Errorf("Origin https://evil.example.com, not in --ws-origins: %d, want 403", eve)
	}
	ana, code := dialOrigin(ctx, t, wsURL+"ana", app)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("Origin %s with --ws-origins app.example.com: %d, want 101", app, code)
	}
	readUntil(ctx, t, ana, "ana") // the open event went through: ana is connected

	if _, code := dialOrigin(ctx, t, wsURL+"bo", ""); code != http.StatusServiceUnavailable {
		t.Errorf("second connection with --ws-max-connections 1: %d, want 503", code)
	}
	if err := ana.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 65))); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := ana.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Errorf("65-byte message with --ws-max-message-bytes 64: %v, want close 1009", err)
			}
			break
		}
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "handshake status " + http.StatusText(e.code) }

// Only patterns that take every origin count as "any origin", the ones
// refused outside --env dev.
func TestWSAnyOrigin(t *testing.T) {
	for _, tt := range []struct {
		origins []string
		want    string
	}{
		{nil, ""},
		{[]string{"app.example.com", "*.example.com"}, ""},
		{[]string{"https://*.example.com"}, ""},
		{[]string{"app.example.com", "*"}, "*"},
		{[]string{"*://*"}, "*://*"},
		{[]string{"HTTPS://*"}, "https://*"},
		{[]string{"*?*"}, "*?*"},
		{[]string{"https://app.example.com", "http://*.example.com"}, ""},
	} {
		l := wsLimits{Origins: tt.origins}
		if got := l.anyOrigin(); got != tt.want {
			t.Errorf("anyOrigin(%q) = %q, want %q", tt.origins, got, tt.want)
		}
	}
}
