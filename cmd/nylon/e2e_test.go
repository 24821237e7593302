package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
)

var gatewayLine = regexp.MustCompile(`(?m)^gateway: (http://\S+) `)

// deployModule uploads module bytes to the admin API with query options.
func deployModule(t *testing.T, admin, name string, module []byte, query url.Values) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, admin+"/v1/functions/"+name+"?"+query.Encode(), bytes.NewReader(module))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy %s: %d %s", name, resp.StatusCode, body)
	}
}

func get(t *testing.T, u string, header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// TestServeEndToEnd runs `nylon serve` with every role on the embedded NATS
// server, deploys the example functions through the admin API and uses them
// through the gateway: hello as an origin, auth + headers + logger as plugins
// in front of an upstream, and chat over WebSocket.
func TestServeEndToEnd(t *testing.T) {
	var upstreamUser atomic.Value
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamUser.Store(r.Header.Get("X-User"))
		w.Header().Set("Server", "upstream/1.0")
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/api/broken" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprint(w, "upstream says hi")
	}))
	defer upstream.Close()

	yaml := `messaging:
  - name: local
    type: nats
    request_timeout_ms: 2000
plugins:
  - name: auth
    type: messaging
    messaging: local
    per_phase:
      request_filter: {on_error: end}
  - name: headers
    type: messaging
    messaging: local
    per_phase:
      response_filter: {on_error: end}
  - name: logger
    type: messaging
    messaging: local
    per_phase:
      logging: {on_error: continue}
routes:
  - path: /api/*
    upstream: ` + upstream.URL + `
    plugins: [auth, headers, logger]
`
	cfgFile := writeGatewayConfig(t, yaml)

	b := startCmd(t, serveArgs(t, "--gateway-config", cfgFile)...)
	b.waitLine(t, readyLine)
	admin := b.waitLine(t, adminLine)
	gw := b.waitLine(t, gatewayLine)
	defer b.stop(t)

	deployModule(t, admin, "hello", testutil.Wasm(t, "functions/examples/hello"), url.Values{"route": {"/hello", "/hello/{name}"}, "max_body_bytes": {"2097152"}})
	deployModule(t, admin, "auth", testutil.Wasm(t, "functions/examples/auth"), url.Values{"config": {"token=s3cret", "user=alice"}})
	deployModule(t, admin, "headers", testutil.Wasm(t, "functions/examples/headers"), url.Values{"config": {"rewrite_status=500:503"}})
	deployModule(t, admin, "logger", testutil.Wasm(t, "functions/examples/logger"), nil)
	deployModule(t, admin, "chat", testutil.Wasm(t, "functions/examples/chat"), url.Values{"route": {"/chat/ws"}})

	// Every function is loaded on the node (compiling takes a moment).
	testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		_, health := getHealthz(t, admin)
		serving := 0
		for _, f := range health.Functions {
			if f.State == platform.FunctionServing {
				serving++
			}
		}
		if serving != 5 {
			return fmt.Errorf("%d of 5 functions serving: %+v", serving, health.Functions)
		}
		return nil
	})

	// hello answers as an origin on its registry routes, without a restart.
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		code, _, body := get(t, gw+"/hello/bob", nil)
		if code != http.StatusOK || body != `{"message":"hello, bob"}` {
			return fmt.Errorf("GET /hello/bob = %d %s", code, body)
		}
		return nil
	})
	if code, h, body := get(t, gw+"/hello?name=you", nil); code != 200 || body != `{"message":"hello, you"}` || h.Get("Content-Type") != "application/json" {
		t.Errorf("GET /hello?name=you = %d %v %s", code, h, body)
	}
	// The deployment's max_body_bytes (2 MiB) is the route's limit, above
	// the 1 MiB default, and the node admits what the gateway lets through.
	for _, tc := range []struct {
		size int
		want int
	}{{1_500_000, http.StatusOK}, {2<<20 + 1, http.StatusRequestEntityTooLarge}} {
		resp, err := http.Post(gw+"/hello?name=big", "application/octet-stream", bytes.NewReader(make([]byte, tc.size)))
		if err != nil {
			t.Fatalf("POST %d bytes: %v", tc.size, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST /hello with %d bytes = %d %s, want %d", tc.size, resp.StatusCode, body, tc.want)
		}
	}

	// The real nats CLI discovers the function through micro: name,
	// endpoint subject, queue group, and the requests just served.
	natsCLI := filepath.Join(testutil.ModuleRoot(t), "build", "bin", "nats")
	if _, err := os.Stat(natsCLI); err != nil {
		t.Fatalf("the nats CLI is needed at %s (%v): run `make test-deps`", natsCLI, err)
	}
	natsURL := b.waitLine(t, natsLine)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"micro", "ls"}, []string{"hello", "chat", "auth"}},
		{[]string{"micro", "info", "hello"}, []string{"nylon.dev.hello.request_filter", "Queue Group: hello", "sha256"}},
		{[]string{"micro", "stats", "hello"}, []string{"request_filter", "hello"}},
	} {
		out, err := exec.Command(natsCLI, append([]string{"--server", natsURL}, tc.args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nats %v: %v\n%s", tc.args, err, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("nats %v output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}

	// auth denies without the token; allows with it and names the user upstream.
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		code, h, _ := get(t, gw+"/api/x", nil)
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			return fmt.Errorf("GET /api/x without token = %d %v", code, h)
		}
		return nil
	})
	bearer := http.Header{"Authorization": {"Bearer s3cret"}}
	code, h, body := get(t, gw+"/api/x", bearer)
	if code != 200 || body != "upstream says hi" || upstreamUser.Load() != "alice" {
		t.Errorf("GET /api/x with token = %d %s, upstream X-User %v", code, body, upstreamUser.Load())
	}
	// headers added security headers and removed Server.
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Server") != "" {
		t.Errorf("response headers not filtered: %v", h)
	}
	// headers rewrote the upstream's 500 to 503.
	if code, _, _ := get(t, gw+"/api/broken", bearer); code != http.StatusServiceUnavailable {
		t.Errorf("GET /api/broken = %d, want 503 (rewrite_status 500:503)", code)
	}

	// chat: two WebSocket clients in one room; a message from one reaches both.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(gw, "http") + "/chat/ws?room=e2e&name="
	alice, _, err := websocket.Dial(ctx, wsURL+"alice", nil)
	if err != nil {
		t.Fatalf("dial alice: %v", err)
	}
	defer alice.CloseNow()
	bob, _, err := websocket.Dial(ctx, wsURL+"bob", nil)
	if err != nil {
		t.Fatalf("dial bob: %v", err)
	}
	defer bob.CloseNow()
	// Each sees its own join notice once it is a member of the room.
	readUntil(ctx, t, alice, "alice")
	readUntil(ctx, t, bob, "bob")
	chat(ctx, t, alice, bob, "hi from alice")
}

// chat sends text from one member of a chat room, waits until both it and
// the other member have it, and closes both connections.
func chat(ctx context.Context, t *testing.T, from, to *websocket.Conn, text string) {
	t.Helper()
	if err := from.Write(ctx, websocket.MessageText, []byte(text)); err != nil {
		t.Fatal(err)
	}
	readUntil(ctx, t, to, text)
	readUntil(ctx, t, from, text)
	from.Close(websocket.StatusNormalClosure, "")
	to.Close(websocket.StatusNormalClosure, "")
}

func readUntil(ctx context.Context, t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if strings.Contains(string(msg), want) {
			return
		}
	}
}
