package wasmhost_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// benchInvocation is a small, typical request_filter input.
func benchInvocation() *protocol.Invocation {
	return &protocol.Invocation{
		Request: protocol.HTTPRequest{
			Method: "GET", Scheme: "https", Host: "api.example.com", Path: "/users/42", ClientIP: "203.0.113.7",
			Headers: []protocol.Header{{Name: "Accept", Value: "application/json"}, {Name: "Authorization", Value: "Bearer abc"}},
		},
		Config: []protocol.KV{{Key: "mode", Value: "ok"}},
	}
}

// Per-call cost on a warm pool, one caller.
func BenchmarkCall(b *testing.B) {
	cases := []struct {
		name string
		wasm func(b *testing.B) []byte
	}{
		{"go-minimal", func(b *testing.B) []byte { return testutil.Wasm(b, guestMinimal) }},    // Go guest, returns Next
		{"handbuilt-next", func(b *testing.B) []byte { return nextModule() }},                  // no guest runtime: the host's own cost
		{"handbuilt-write", func(b *testing.B) []byte { return helloModule() }},                // one write: the op result allocations
		{"go-hostile-ok", func(b *testing.B) []byte { return testutil.Wasm(b, guestHostile) }}, // reads config, writes a header
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h, _ := newHost(b, wasmhost.Config{})
			m := compile(b, h, c.name, c.wasm(b), wasmhost.Limits{MaxWorkers: 1})
			ctx := context.Background()
			inv := benchInvocation()
			id := protocol.NewRequestID()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, inv, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Pool checkout under contention: GOMAXPROCS goroutines (times
// -cpu/SetParallelism) share MaxWorkers instances.
func BenchmarkCallParallel(b *testing.B) {
	for _, c := range []struct {
		name    string
		workers int
	}{
		{"workers=1", 1},
		{"workers=GOMAXPROCS", runtime.GOMAXPROCS(0)},
	} {
		b.Run(c.name, func(b *testing.B) {
			h, _ := newHost(b, wasmhost.Config{})
			m := compile(b, h, "minimal", testutil.Wasm(b, guestMinimal), wasmhost.Limits{MaxWorkers: c.workers})
			if err := m.Warm(context.Background(), c.workers); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(4) // 4 callers per CPU: more callers than instances
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				inv := benchInvocation()
				id := protocol.NewRequestID()
				for pb.Next() {
					if _, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, inv, id); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// Cold load of a Go guest (~2 MB): a new host (fresh runtime) compiles the
// module and starts its first instance, without a compilation cache and
// with a warm on-disk one.
func BenchmarkCompile(b *testing.B) {
	wasm := testutil.Wasm(b, guestMinimal)
	ctx := context.Background()
	load := func(b *testing.B, cfg wasmhost.Config) {
		b.Helper()
		h, err := wasmhost.New(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Compile(ctx, "minimal", wasm, wasmhost.Limits{}); err != nil {
			b.Fatal(err)
		}
		if err := h.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("no-cache", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			load(b, wasmhost.Config{})
		}
	})
	b.Run("warm-disk-cache", func(b *testing.B) {
		cfg := wasmhost.Config{}.WithCompilationCacheDir(b.TempDir())
		load(b, cfg) // fills the cache
		b.ReportAllocs()
		for b.Loop() {
			load(b, cfg)
		}
	})
}

// Instantiation alone (what the pool pays to grow or replace an instance),
// measured as Warm on a module whose instances are closed between rounds.
func BenchmarkInstantiate(b *testing.B) {
	h, _ := newHost(b, wasmhost.Config{})
	wasm := testutil.Wasm(b, guestMinimal)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		m := compile(b, h, "minimal", wasm, wasmhost.Limits{MaxWorkers: 2})
		b.StartTimer()
		if err := m.Warm(ctx, 2); err != nil { // one new instance
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
