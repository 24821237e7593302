package yield

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// goGuests returns the real Go guests of the repository: every example
// function and wasmhost test guest (built if missing or stale), whatever
// else is in build/wasm (other packages' guests), and the hand-built modules
// committed in wasmhost/testdata.
func goGuests(t *testing.T) map[string][]byte {
	t.Helper()
	root := testutil.ModuleRoot(t)
	paths := map[string]bool{}
	for _, pattern := range []string{"functions/examples/*/main.go", "wasmhost/testdata/guests/*/main.go"} {
		mains, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mains {
			rel, _ := filepath.Rel(root, filepath.Dir(m))
			paths[testutil.WasmPath(t, rel)] = true
		}
	}
	for _, pattern := range []string{"build/wasm/*.wasm", "wasmhost/testdata/*.wasm"} {
		more, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range more {
			paths[p] = true
		}
	}
	if len(paths) < 10 {
		t.Fatalf("found only %d guests: %v", len(paths), paths)
	}
	out := map[string][]byte{}
	for p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = b
	}
	return out
}

// TestGoGuestsCompile instruments every real guest and compiles the result
// with wazero's compiler (validation included). The output must be
// deterministic; the shared compilation cache makes reruns cheap.
func TestGoGuestsCompile(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, cachedConfig(t))
	defer rt.Close(ctx)
	guests := goGuests(t)
	names := make([]string, 0, len(guests))
	for n := range guests {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		wasm := guests[name]
		// wasmhost's config: Go guests' tables fit its cap.
		cfg := Config{Module: "nylon_sys", Name: "yield", Budget: 1 << 20, MaxTableEntries: 1 << 20}
		out := mustInstrument(t, wasm, cfg)
		if again := mustInstrument(t, wasm, cfg); !bytes.Equal(out, again) {
			t.Errorf("%s: output not deterministic", name)
		}
		cm, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Errorf("%s: instrumented module does not compile: %v", name, err)
			continue
		}
		imports := cm.ImportedFunctions()
		last := imports[len(imports)-1]
		if mod, n, _ := last.Import(); mod != "nylon_sys" || n != "yield" {
			t.Errorf("%s: last import is %s.%s", name, mod, n)
		}
		t.Logf("%s: %d -> %d bytes (+%.1f%%)", name, len(wasm), len(out), 100*float64(len(out)-len(wasm))/float64(len(wasm)))
		cm.Close(ctx)
	}
}

// cachedConfig is the default runtime config with the compilation cache all
// packages' tests share, so each guest is compiled to machine code once.
func cachedConfig(t *testing.T) wazero.RuntimeConfig {
	t.Helper()
	cache, err := wazero.NewCompilationCacheWithDir(testutil.CompileCacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close(context.Background()) })
	return wazero.NewRuntimeConfig().WithCompilationCache(cache)
}

// guestHost adds WASI and stub "nylon" imports (ABI v1) to a host, so real Go
// guests run: read answers the route config key "mode" with mode.
func guestHost(t *testing.T, grant int32, mode string) *host {
	t.Helper()
	ctx := context.Background()
	h := newHostWithConfig(t, grant, cachedConfig(t))
	wasi_snapshot_preview1.MustInstantiate(ctx, h.rt)
	const readConfig = 220
	_, err := h.rt.NewHostModuleBuilder("nylon").
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, method, keyPtr, keyLen, bufPtr, bufCap uint32) int32 {
		key, ok := m.Memory().Read(keyPtr, keyLen)
		if method != readConfig || !ok || string(key) != "mode" {
			return -1
		}
		if uint32(len(mode)) <= bufCap {
			m.Memory().Write(bufPtr, []byte(mode))
		}
		return int32(len(mode))
	}).Export("read").
		NewFunctionBuilder().WithFunc(func(context.Context, uint32, uint32, uint32, uint32, uint32) int32 { return 0 }).Export("write").
		NewFunctionBuilder().WithFunc(func(context.Context, int32, uint32, uint32) {}).Export("log").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *host) instantiateGuest(wasm []byte) api.Module {
	h.t.Helper()
	h.n++
	m, err := h.rt.InstantiateWithConfig(context.Background(), wasm,
		wazero.NewModuleConfig().WithName("guest"+string(rune('a'+h.n))).WithStartFunctions("_initialize"))
	if err != nil {
		h.t.Fatalf("instantiate: %v", err)
	}
	return m
}

// TestGoGuestRuns runs instrumented Go guests end to end: the Go runtime's
// initialisation and a handler call behave as in the original, and yield is
// called along the way.
func TestGoGuestRuns(t *testing.T) {
	minimal := testutil.Wasm(t, "wasmhost/testdata/guests/minimal")
	h := guestHost(t, 1000, "")
	m0 := h.instantiateGuest(minimal)
	m1 := h.instantiateGuest(mustInstrument(t, minimal, withBudget(1000)))
	if h.calls.Load() == 0 {
		t.Error("the Go runtime's initialisation never yielded")
	}
	for _, c := range []invocation{inv("nylon_phases"), inv("nylon_handle", 2, 0)} {
		want, got := call1(t, m0, c.name, c.args...), call1(t, m1, c.name, c.args...)
		if got[0] != want[0] {
			t.Errorf("%s: %d, original %d", c.name, got[0], want[0])
		}
	}

	hostile := testutil.Wasm(t, "wasmhost/testdata/guests/hostile")
	h = guestHost(t, 1000, "ok")
	if res := call1(t, h.instantiateGuest(mustInstrument(t, hostile, withBudget(1000))), "nylon_handle", 2, 0); res[0] != 0 {
		t.Errorf("hostile guest, mode ok: action %d, want 0 (Next)", res[0])
	}
}

// TestGoGuestInfiniteLoopStops: a real Go guest spinning in `for { sink++ }`
// is stopped by the yield function, both deterministically (after N yields)
// and by a context deadline.
func TestGoGuestInfiniteLoopStops(t *testing.T) {
	hostile := mustInstrument(t, testutil.Wasm(t, "wasmhost/testdata/guests/hostile"), withBudget(1<<16))

	h := guestHost(t, 1<<16, "loop")
	m := h.instantiateGuest(hostile)
	h.limit = h.calls.Load() + 50
	_, err := m.ExportedFunction("nylon_handle").Call(context.Background(), 2, 0)
	if !errors.Is(err, errStop) {
		t.Fatalf("loop mode: %v, want %v", err, errStop)
	}
	if got := h.calls.Load(); got != h.limit {
		t.Errorf("%d yield calls, want %d", got, h.limit)
	}

	h = guestHost(t, 1<<16, "loop")
	m = h.instantiateGuest(hostile)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = m.ExportedFunction("nylon_handle").Call(ctx, 2, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("loop mode with deadline: %v, want %v", err, context.DeadlineExceeded)
	}
	t.Logf("stopped %v after the call started (deadline 50ms)", time.Since(start))
}
