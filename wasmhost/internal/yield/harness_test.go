package yield

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The import every test instruments with, as wasmhost does.
var testConfig = Config{Module: "nylon_sys", Name: "yield", Budget: 10}

func withBudget(budget int32) Config {
	c := testConfig
	c.Budget = budget
	return c
}

// errStop is what the test yield function panics with to stop a call.
var errStop = errors.New("yield: stopped by the test")

// host is a real wazero runtime with the yield import and an "env" module
// (a wasm module, so it can export a global, a memory and a table too).
type host struct {
	t     testing.TB
	rt    wazero.Runtime
	grant int32        // what yield returns
	limit int64        // yield panics with errStop on call number limit (0: never)
	calls atomic.Int64 // yield calls so far
	n     int          // instances so far, for unique names
}

// envModule is instantiated as "env" in every host:
//
//	(module
//	  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
//	  (func (export "imp") (result i32) (i32.const 1000))
//	  (global (export "g") i32 (i32.const 7))
//	  (global (export "mg") (mut i32) (i32.const 0))
//	  (memory (export "mem") 1)
//	  (table (export "tab") 4 funcref))
func envModule() []byte {
	return module(
		typeSec(funcType([]byte{i32, i32}, []byte{i32}), funcType(nil, []byte{i32})),
		functionSec(0, 1),
		tableSec(table(fref, 4)),
		memorySec(memory(1)),
		globalSec(global(i32, false, i32c(7)), global(i32, true, i32c(0))),
		exportSec(exportFunc("add", 0), exportFunc("imp", 1), export("g", 3, 0), export("mg", 3, 1),
			export("mem", 2, 0), export("tab", 1, 0)),
		codeSec(
			code(nil, localGet(0), localGet(1), op(opI32Add)),
			code(nil, i32c(1000)),
		),
	)
}

// newHost starts a runtime (wazero's default: the compiler on amd64/arm64)
// whose yield function returns grant.
func newHost(t testing.TB, grant int32) *host {
	return newHostWithConfig(t, grant, wazero.NewRuntimeConfig())
}

func newHostWithConfig(t testing.TB, grant int32, cfg wazero.RuntimeConfig) *host {
	t.Helper()
	ctx := context.Background()
	h := &host{t: t, rt: wazero.NewRuntimeWithConfig(ctx, cfg), grant: grant}
	t.Cleanup(func() { h.rt.Close(ctx) })
	_, err := h.rt.NewHostModuleBuilder(testConfig.Module).
		NewFunctionBuilder().
		WithGoFunction(api.GoFunc(func(ctx context.Context, stack []uint64) {
			if n := h.calls.Add(1); n == h.limit {
				panic(errStop)
			}
			if done := ctx.Done(); done != nil {
				select {
				case <-done:
					panic(context.Cause(ctx))
				default:
				}
			}
			stack[0] = api.EncodeI32(h.grant)
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(testConfig.Name).
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.rt.InstantiateWithConfig(ctx, envModule(), wazero.NewModuleConfig().WithName("env")); err != nil {
		t.Fatal(err)
	}
	return h
}

// instantiate compiles and instantiates wasm (running its start function)
// under a fresh name.
func (h *host) instantiate(wasm []byte) (api.Module, error) {
	h.n++
	return h.rt.InstantiateWithConfig(context.Background(), wasm, wazero.NewModuleConfig().WithName(fmt.Sprintf("m%d", h.n)))
}

func (h *host) mustInstantiate(wasm []byte) api.Module {
	h.t.Helper()
	m, err := h.instantiate(wasm)
	if err != nil {
		h.t.Fatalf("instantiate: %v", err)
	}
	return m
}

// call calls the export name and fails the test on error.
func call1(t testing.TB, m api.Module, name string, args ...uint64) []uint64 {
	t.Helper()
	f := m.ExportedFunction(name)
	if f == nil {
		t.Fatalf("no export %q", name)
	}
	res, err := f.Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s%v: %v", name, args, err)
	}
	return res
}

func mustInstrument(t testing.TB, wasm []byte, cfg Config) []byte {
	t.Helper()
	out, err := Instrument(wasm, cfg)
	if err != nil {
		t.Fatalf("instrument: %v", err)
	}
	return out
}

// invocation is one call of an export.
type invocation struct {
	name string
	args []uint64
}

func inv(name string, args ...uint64) invocation { return invocation{name, args} }

// sameBehaviour runs the invocations, in order, on one instance of the
// original module and one of its instrumented copy and checks that they give
// the same results. It returns the instrumented results.
func sameBehaviour(t *testing.T, h *host, orig []byte, cfg Config, calls ...invocation) [][]uint64 {
	t.Helper()
	m0 := h.mustInstantiate(orig)
	m1 := h.mustInstantiate(mustInstrument(t, orig, cfg))
	var got [][]uint64
	for _, c := range calls {
		want := call1(t, m0, c.name, c.args...)
		res := call1(t, m1, c.name, c.args...)
		if !slices.Equal(res, want) {
			t.Errorf("%s%v: instrumented %v, original %v", c.name, c.args, res, want)
		}
		got = append(got, res)
	}
	return got
}

// counter simulates the rewritten module's counter: at each yield point with
// cost k, if the counter is positive it falls by k, else yield is called and
// the counter set to what it returns.
type counter struct {
	c, grant int32
	calls    int
}

func (s *counter) pass(cost int32) {
	if s.c > 0 {
		s.c -= cost
		return
	}
	s.calls++
	s.c = s.grant
}
