package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

var (
	adminLine = regexp.MustCompile(`(?m)^admin: (http://\S+) `)
	natsLine  = regexp.MustCompile(`(?m)^nats: (nats://\S+) \(embedded`)
	readyLine = regexp.MustCompile(`(?m)^(nylon serve: ready)`)
)

func serveArgs(t *testing.T, extra ...string) []string {
	return append([]string{"serve",
		"--nats-listen", "127.0.0.1:-1", "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, extra...)
}

func getHealthz(t *testing.T, base string) (int, platform.Health) {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var body platform.Health
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode /healthz: %v", err)
	}
	return resp.StatusCode, body
}

func TestServeStartsAnswersAndDrains(t *testing.T) {
	b := startCmd(t, serveArgs(t)...)
	b.waitLine(t, readyLine)
	admin := b.waitLine(t, adminLine)
	natsURL := b.waitLine(t, natsLine)

	out := b.stdout.String()
	if !strings.Contains(out, "nats CLI: nats --server "+natsURL+" micro ls") {
		t.Errorf("no nats CLI hint in:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^gateway: http://127\.0\.0\.1:\d+ `).MatchString(out) {
		t.Errorf("no gateway line in:\n%s", out)
	}
	if !strings.Contains(out, "node: ") {
		t.Errorf("no node line in:\n%s", out)
	}

	code, body := getHealthz(t, admin)
	if code != http.StatusOK || body.Status != "ok" || !body.NATS.Connected {
		t.Errorf("/healthz = %d %+v", code, body)
	}
	if code, _ := httpGet(t, admin+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --pprof = %d, want 404", code)
	}

	// Other processes reach the embedded server on the printed URL.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("connect %s: %v", natsURL, err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	if code := b.stop(t); code != 0 {
		t.Fatalf("exit %d after cancel, stderr:\n%s", code, b.stderr.String())
	}
	out = b.stdout.String()
	if !strings.Contains(out, "nylon serve: draining") || !strings.HasSuffix(out, "nylon serve: stopped\n") {
		t.Errorf("shutdown lines missing:\n%s", out)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(admin, "http://"), time.Second); err == nil {
		c.Close()
		t.Error("admin address still accepts connections after serve returned")
	}
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if nc.IsConnected() {
			return errString("client still connected to the embedded server after serve returned")
		}
		return nil
	})
}

// httpGet returns the status and body of GET url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

type errString string

func (e errString) Error() string { return string(e) }

func TestServeEnvOverridesDefault(t *testing.T) {
	t.Setenv("NYLON_DATA", t.TempDir())
	t.Setenv("NYLON_NATS_LISTEN", "127.0.0.1:-1")
	t.Setenv("NYLON_ADMIN", "127.0.0.1:0")
	t.Setenv("NYLON_ROLE", "admin")
	t.Setenv("NYLON_LOG_FORMAT", "json")
	t.Setenv("NYLON_LOG_LEVEL", "loud") // overridden by the flag below
	t.Setenv("NYLON_PPROF", "true")
	b := startCmd(t, "serve", "--log-level", "info")
	b.waitLine(t, readyLine)
	admin := b.waitLine(t, adminLine)
	if strings.HasSuffix(admin, ":8081") {
		t.Errorf("admin on %s: NYLON_ADMIN did not override the default", admin)
	}
	if natsURL := b.waitLine(t, natsLine); strings.HasSuffix(natsURL, ":4222") {
		t.Errorf("nats on %s: NYLON_NATS_LISTEN did not override the default", natsURL)
	}
	out := b.stdout.String()
	if strings.Contains(out, "gateway:") || strings.Contains(out, "node:") {
		t.Errorf("NYLON_ROLE=admin still set up other roles:\n%s", out)
	}
	// dev without --admin-token: the profiles need no token.
	if code, index := httpGet(t, admin+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(index, "goroutine") {
		t.Errorf("NYLON_PPROF=true: /debug/pprof/ = %d %.300q", code, index)
	}
	if code := b.stop(t); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, b.stderr.String())
	}
	if !strings.Contains(b.stderr.String(), `"msg":"serving"`) {
		t.Errorf("NYLON_LOG_FORMAT=json not applied, stderr:\n%s", b.stderr.String())
	}
}

func TestServeRefusesInsecureOutsideDev(t *testing.T) {
	dir := t.TempDir()
	// A gateway messaging config dialling servers of its own with a token.
	tokenYAML := filepath.Join(dir, "token.yaml")
	if err := os.WriteFile(tokenYAML, []byte(`messaging:
  - name: m
    servers: ["tls://nats.example:4222"]
    tls: {enabled: true}
    auth: {enabled: true, token: s3cret}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--nats", "nats://127.0.0.1:4222"}, "tls"},
		{[]string{"--nats", "tls://127.0.0.1:4222", "--nats-token", "t"}, "credentials"},
		{[]string{"--nats-listen", "0.0.0.0:-1"}, "loopback"},
		// The embedded server on loopback is allowed; the admin API
		// without its token is not.
		{[]string{"--nats-listen", "127.0.0.1:-1"}, "--admin-token"},
		{[]string{"--nats-listen", "127.0.0.1:-1", "--admin-token", "a", "--gateway-config", tokenYAML}, "messaging[0].auth.token: dev-only"},
	}
	for _, tt := range tests {
		data := filepath.Join(t.TempDir(), "data")
		args := append([]string{"serve", "--env", "staging", "--data", data, "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, tt.args...)
		code, out, errOut := runCmd(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr:\n%s", tt.args, code, errOut)
		}
		if !strings.Contains(errOut, "refusing to start") || !strings.Contains(errOut, "--env dev") || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: stderr = %q, want a clear refusal naming %q", tt.args, errOut, tt.want)
		}
		assertNothingStarted(t, tt.args, out, data)
	}
}

// refusedServe is a serve invocation that must be refused before anything
// starts: its flags, its NYLON_* variables, and what stderr must say.
type refusedServe struct {
	args []string
	env  map[string]string
	want string
}

// expectServeRefuses runs serve (embedded NATS on a random port, random
// listeners) with each case and checks exit code 2, the message, and that
// nothing started.
func expectServeRefuses(t *testing.T, tests []refusedServe) {
	t.Helper()
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+mapString(tt.env), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			data := filepath.Join(t.TempDir(), "data")
			code, out, errOut := runCmd(t, append([]string{"serve", "--nats-listen", "127.0.0.1:-1", "--data", data,
				"--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tt.want)
			}
			assertNothingStarted(t, tt.args, out, data)
		})
	}
}

// assertNothingStarted checks that serve printed nothing (no NATS, no
// listener) and did not even create its data directory.
func assertNothingStarted(t *testing.T, args []string, stdout, data string) {
	t.Helper()
	if stdout != "" {
		t.Errorf("%v: printed %q; want nothing started", args, stdout)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v: data directory %s: %v; want it not created", args, data, err)
	}
}

func TestServeRejectsBadGatewayConfigBeforeStarting(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		file string
		want string
	}{
		{write("syntax.yaml", "messaging: [\n"), "syntax.yaml:"},
		{write("unknown.yaml", "messaging:\n  - name: m\n    timout_ms: 5\n"), `unknown.yaml:3: field "timout_ms" not found`},
		{write("reference.yaml", "plugins:\n  - {name: p, messaging: nope}\n"), `"nope" is not a messaging config`},
		{filepath.Join(dir, "missing.yaml"), "missing.yaml"},
	}
	for _, tt := range tests {
		data := filepath.Join(t.TempDir(), "data")
		code, out, errOut := runCmd(t, "serve", "--nats-listen", "127.0.0.1:-1", "--data", data,
			"--http", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--gateway-config", tt.file)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2; stderr:\n%s", tt.file, code, errOut)
		}
		if !strings.Contains(errOut, "--gateway-config") || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s: stderr = %q, want %q", tt.file, errOut, tt.want)
		}
		assertNothingStarted(t, []string{tt.file}, out, data)
	}
}

func TestServeFailsWhenAdminPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, out, errOut := runCmd(t, "serve", "--nats-listen", "127.0.0.1:-1", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--admin", ln.Addr().String())
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut, "component admin: start: ") || !strings.Contains(errOut, "listen "+ln.Addr().String()) {
		t.Errorf("stderr = %q, want the admin listen error", errOut)
	}
	if strings.Contains(out, "nylon serve: ready") || !strings.HasSuffix(out, "nylon serve: stopped\n") {
		t.Errorf("stdout = %q, want no ready line and a clean stop", out)
	}
}

// The up-front checks apply to the roles that use what they check: the
// admin token to role admin, the gateway config to role gateway. A
// messaging config without servers shares serve's (checked) connection and
// needs no TLS or credentials of its own.
func TestServeConfigChecksWhatRolesUse(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared.yaml")
	if err := os.WriteFile(shared, []byte("messaging:\n  - name: m\nplugins:\n  - {name: p, messaging: m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	cfg := func(role, gatewayConfig string) *serveConfig {
		return &serveConfig{
			Env: "staging", Data: t.TempDir(), Role: role, DrainTimeout: time.Second, Replicas: 1,
			NATS: natsFlags{Listen: "127.0.0.1:-1"}, HTTP: "127.0.0.1:0", Admin: "127.0.0.1:0",
			Log: logFlags{Level: "info", Format: "text"}, GatewayConfig: gatewayConfig,
		}
	}
	for _, c := range []*serveConfig{cfg("node", missing), cfg("node,gateway", shared)} {
		if err := c.Validate(); err != nil {
			t.Errorf("role %s: %v", c.Role, err)
		}
		g, err := c.gatewayConfig()
		if err != nil {
			t.Errorf("role %s, %s: %v", c.Role, c.GatewayConfig, err)
		}
		if c.Role == "node,gateway" && len(g.Plugins) != 1 {
			t.Errorf("role %s: gateway config %+v, want the file's", c.Role, g)
		}
	}
	if err := cfg("node,admin", "").Validate(); err == nil || !strings.Contains(err.Error(), "--admin-token") {
		t.Errorf("role admin without a token in staging: %v", err)
	}
}

// TestFunctionRouteRunsWithItsVersionsConfig: a route's request runs with
// the config of the version the node serves, not the active record's. Here
// version 2 cannot be loaded (stored around the admin API's validation), so
// the node keeps serving version 1, as it does for a moment after every
// deploy or rollback: version 1's code must not see version 2's config.
func TestFunctionRouteRunsWithItsVersionsConfig(t *testing.T) {
	b := startCmd(t, serveArgs(t)...)
	b.waitLine(t, readyLine)
	admin, gw, natsURL := b.waitLine(t, adminLine), b.waitLine(t, gatewayLine), b.waitLine(t, natsLine)

	counter := testutil.Wasm(t, "platform/testdata/guests/counter")
	deployModule(t, admin, "counter", counter, url.Values{"route": {"/c"}, "config": {"label=v1"}})
	label := func() (int, string) {
		resp, err := http.Get(gw + "/c")
		if err != nil {
			t.Fatalf("GET /c: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Label")
	}
	testutil.Eventually(t, 60*time.Second, 20*time.Millisecond, func() error {
		if code, l := label(); code != http.StatusOK || l != "v1" {
			return fmt.Errorf("GET /c = %d, X-Label %q", code, l)
		}
		return nil
	})

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := registry.New(ctx, testutil.JetStream(t, nc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Deploy(ctx, registry.Spec{Name: "counter", Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter),
		Routes: []string{"/c"}, Config: map[string]string{"label": "v2"}}, []byte("not a wasm module")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if _, h := getHealthz(t, admin); len(h.Functions) != 1 || h.Functions[0].ErrorVersion != 2 || h.Functions[0].Version != 1 {
			return fmt.Errorf("health functions %+v", h.Functions)
		}
		return nil
	})
	for range 5 {
		if code, l := label(); code != http.StatusOK || l != "v1" {
			t.Fatalf("GET /c = %d, X-Label %q; want version 1's label from the version 1 that serves", code, l)
		}
	}
}
