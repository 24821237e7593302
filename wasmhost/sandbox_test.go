package wasmhost_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// sandboxProbe is what the sandbox guest is told to reach for.
type sandboxProbe struct {
	file string // a file on the host, with content
	dir  string // a host directory to write into
	port string // a TCP port on the host that accepts connections
}

// probe calls the sandbox guest once and returns its report, by header.
func (p sandboxProbe) call(t *testing.T, m *wasmhost.Module) map[string]string {
	t.Helper()
	inv := withConfig("file", p.file, "dir", p.dir, "port", p.port)
	res, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, inv, protocol.NewRequestID())
	if err != nil || res.Action != protocol.ActionNext {
		t.Fatalf("sandbox call: %v, action %v error %q", err, res.Action, res.Error)
	}
	out := map[string]string{}
	for _, op := range res.Ops {
		if op.Code == protocol.OpSetResponseHeader {
			out[op.Key] = string(op.Value)
		}
	}
	for _, k := range []string{"x-wall", "x-mono", "x-rand", "x-env", "x-args", "x-read", "x-passwd", "x-open", "x-readdir", "x-create", "x-dial"} {
		if _, ok := out[k]; !ok {
			t.Fatalf("sandbox report lacks %s: %v", k, out)
		}
	}
	return out
}

func int64Of(t *testing.T, report map[string]string, key string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(report[key], 10, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", key, report[key], err)
	}
	return n
}

// The sandbox of DESIGN.md's guest ABI, seen from inside a Go guest: the
// real wall clock, a monotonic clock that follows the host's, crypto
// random that differs per call and per instance; no environment, no
// arguments, no filesystem, no network. wazero's defaults for clocks and
// random are deterministic fakes (a fixed 2022 epoch, +1 ms per reading,
// a fixed seed), so each check below fails if the host stops asking for
// the real ones.
func TestGuestSandbox(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	wasm := testutil.Wasm(t, guestSandbox)
	one := compile(t, h, "sandbox", wasm, wasmhost.Limits{MaxWorkers: 1})
	other := compile(t, h, "sandbox-2", wasm, wasmhost.Limits{MaxWorkers: 1})

	// Things that exist on the host, so a failure in the guest means the
	// sandbox, not a missing file or nobody listening.
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("host only"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p := sandboxProbe{file: file, dir: dir, port: port}

	t0 := time.Now()
	first := p.call(t, one)
	t1 := time.Now()
	// A gap the guest's monotonic clock must see; a fake clock that
	// advances per reading would not.
	const gap = 50 * time.Millisecond
	time.Sleep(gap)
	t2 := time.Now()
	second := p.call(t, one)
	t3 := time.Now()

	if wall := time.Unix(0, int64Of(t, first, "x-wall")); wall.Before(t0.Add(-time.Millisecond)) || wall.After(t1.Add(time.Millisecond)) {
		t.Errorf("guest time.Now() = %v, want between %v and %v (the host's clock)", wall, t0, t1)
	}
	// The guest read its clock after t0 and before t1 in the first call,
	// after t2 and before t3 in the second.
	mono := time.Duration(int64Of(t, second, "x-mono") - int64Of(t, first, "x-mono"))
	if mono < t2.Sub(t1) || mono > t3.Sub(t0) {
		t.Errorf("guest monotonic clock advanced %v between the calls, want %v..%v (the host's)", mono, t2.Sub(t1), t3.Sub(t0))
	}

	third := p.call(t, other) // a fresh instance of another module
	for _, r := range []map[string]string{first, second, third} {
		if b := r["x-rand"]; len(b) != 32 || strings.HasPrefix(b, "error") {
			t.Fatalf("crypto/rand read %q, want 16 bytes", b)
		}
	}
	if first["x-rand"] == second["x-rand"] {
		t.Errorf("crypto/rand gave %s on two calls of one instance", first["x-rand"])
	}
	if first["x-rand"] == third["x-rand"] {
		t.Errorf("crypto/rand gave %s on the first call of two instances (a seeded source)", first["x-rand"])
	}

	for _, r := range []map[string]string{first, third} {
		if r["x-env"] != "" {
			t.Errorf("guest environment %q, want none", r["x-env"])
		}
		if r["x-args"] != "0" {
			t.Errorf("guest has %s arguments, want none", r["x-args"])
		}
		for key, what := range map[string]string{
			"x-read":    "os.ReadFile(" + file + ")",
			"x-passwd":  `os.ReadFile("/etc/passwd")`,
			"x-open":    `os.Open("/")`,
			"x-readdir": `os.ReadDir(".")`,
			"x-create":  "os.WriteFile(" + dir + "/escaped)",
			"x-dial":    "net.Dial to 127.0.0.1:" + port,
		} {
			if !strings.HasPrefix(r[key], "error: ") {
				t.Errorf("%s in the guest: %q, want an error", what, r[key])
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "escaped")); err == nil {
		t.Error("the guest wrote a file on the host")
	}
	t.Logf("guest errors: read %q, open %q, dial %q", first["x-read"], first["x-open"], first["x-dial"])
}
