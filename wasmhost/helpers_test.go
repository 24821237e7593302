package wasmhost_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Go guests under testdata/guests, built once per run by testutil.Wasm.
const (
	guestMinimal = "wasmhost/testdata/guests/minimal"
	guestHostile = "wasmhost/testdata/guests/hostile"
	guestABI     = "wasmhost/testdata/guests/abi"
	guestSandbox = "wasmhost/testdata/guests/sandbox"
)

// logBuffer collects a JSON slog handler's output, safe for concurrent
// writers.
type logBuffer struct{ testutil.SyncBuffer }

// records returns every record logged so far, decoded.
func (b *logBuffer) records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

// matching returns the records whose msg is msg.
func (b *logBuffer) matching(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range b.records(t) {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// newHost starts a Host with the shared compilation cache and a log
// capture, closed at the end of the test.
func newHost(t testing.TB, cfg wasmhost.Config) (*wasmhost.Host, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg = cfg.WithCompilationCacheDir(testutil.CompileCacheDir(t)).WithLogger(logger)
	h, err := wasmhost.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new host: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("close host: %v", err)
		}
	})
	return h, logs
}

// compile loads wasm as function name, failing the test on error.
func compile(t testing.TB, h *wasmhost.Host, name string, wasm []byte, limits wasmhost.Limits) *wasmhost.Module {
	t.Helper()
	m, err := h.Compile(context.Background(), name, wasm, limits)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return m
}

// withConfig returns a request_filter invocation carrying config pairs
// given as key, value, key, value...
func withConfig(kv ...string) *protocol.Invocation {
	inv := &protocol.Invocation{Request: protocol.HTTPRequest{Method: "GET", Path: "/"}}
	for i := 0; i+1 < len(kv); i += 2 {
		inv.Config = append(inv.Config, protocol.KV{Key: kv[i], Value: kv[i+1]})
	}
	return inv
}

// callMode calls the hostile guest in mode (request_filter) with extra
// config pairs.
func callMode(ctx context.Context, m *wasmhost.Module, mode string, kv ...string) (wasmhost.Result, error) {
	return m.Call(ctx, protocol.PhaseRequestFilter, 0, withConfig(append([]string{"mode", mode}, kv...)...), protocol.NewRequestID())
}

// header returns the value of the first set-response-header op named name.
func header(res wasmhost.Result, name string) (string, bool) {
	for _, op := range res.Ops {
		if op.Code == protocol.OpSetResponseHeader && op.Key == name {
			return string(op.Value), true
		}
	}
	return "", false
}

// mustCallsHeader checks res is a Next carrying x-calls == want: the number
// of calls the instance that served it has handled.
func mustCallsHeader(t testing.TB, res wasmhost.Result, err error, want string) {
	t.Helper()
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if res.Action != protocol.ActionNext || res.Error != "" {
		t.Fatalf("call: action %v error %q, want Next", res.Action, res.Error)
	}
	if got, _ := header(res, "x-calls"); got != want {
		t.Fatalf("x-calls = %q, want %q (ops %+v)", got, want, res.Ops)
	}
}
