package yield

import (
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// goGuestForFuzz is the smallest real Go guest.
func goGuestForFuzz(t testing.TB) []byte {
	t.Helper()
	return testutil.Wasm(t, "wasmhost/testdata/guests/minimal")
}

// FuzzInstrument: Instrument never panics, every error wraps one of its
// kinds, and whenever it accepts a module that wazero compiles, wazero
// compiles the instrumented copy too (and instantiates it, running any start
// function, when it has no other imports).
//
//	go test ./wasmhost/internal/yield -run '^$' -fuzz FuzzInstrument -fuzztime 60s
func FuzzInstrument(f *testing.F) {
	for _, wasm := range testModules() {
		f.Add(wasm)
	}
	f.Add(oneFunc(cat(op(opLoop, blockEmpty), br(0), op(opEnd))))
	guest := goGuestForFuzz(f)
	f.Add(guest[:4096]) // the header, types and imports of a real guest

	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(16))
	defer rt.Close(ctx)
	_, err := rt.NewHostModuleBuilder(testConfig.Module).NewFunctionBuilder().
		WithFunc(func(context.Context) int32 { return 1 }).Export(testConfig.Name).Instantiate(ctx)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		checkInstrument(t, rt, wasm)
	})
}

// fuzzConfig caps tables low enough for the fuzzer to find both sides of it.
var fuzzConfig = Config{Module: testConfig.Module, Name: testConfig.Name, Budget: testConfig.Budget, MaxTableEntries: 64}

// checkInstrument is the property both fuzz targets check.
func checkInstrument(t *testing.T, rt wazero.Runtime, wasm []byte) {
	ctx := context.Background()
	out, err := Instrument(wasm, fuzzConfig)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrLimit)) {
			t.Fatalf("error %v (%T) is not an *Error of a known kind", err, err)
		}
		return
	}
	// Only modules Instrument accepted reach wazero: wazero's decoder
	// allocates from claimed counts, which Instrument bounds.
	if !compiles(rt, wasm) {
		return
	}
	cm, err := rt.CompileModule(ctx, out)
	if err != nil {
		t.Fatalf("wazero compiles the input but not the output: %v", err)
	}
	defer cm.Close(ctx)
	onlyYield := true
	for _, d := range cm.ImportedFunctions() {
		if mod, _, _ := d.Import(); mod != testConfig.Module {
			onlyYield = false
		}
	}
	if onlyYield && len(cm.ImportedMemories()) == 0 {
		// Traps in the start function are fine; crashes of the engine are not.
		if m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions()); err == nil {
			m.Close(ctx)
		}
	}
}

// skeleton wraps a function body (instructions without the final end) in a
// module with something of every kind for it to use:
//
//	(type $v (func)) (type $t (func (param i32) (result i32)))
//	(type $p (func (param i32 i32) (result i32 i32))) (type $r (func (result i32)))
//	(import "env" "f" (func (type $t)))                     ;; func 0
//	(import "env" "g" (global i32))                         ;; global 0
//	(func (export "run") (type $t)                          ;; func 1
//	  (local i32 i64 f32 f64 v128 funcref) <body>)
//	(func (type $r) (i32.const 7))                          ;; func 2
//	(table 4 funcref) (memory 1)
//	(global (mut i32) (i32.const 0)) (global (mut i64) (i64.const 0))  ;; globals 1, 2
//	(elem declare func 1 2)
//	(datacount 1) (data "abc")
func skeleton(body []byte) []byte {
	locals := cat(uleb(nil, 6), []byte{1, i32, 1, i64, 1, f32, 1, f64, 1, v128, 1, fref})
	return module(
		typeSec(funcType(nil, nil), funcType([]byte{i32}, []byte{i32}),
			funcType([]byte{i32, i32}, []byte{i32, i32}), funcType(nil, []byte{i32})),
		importSec(importFunc("env", "f", 1), importGlobal("env", "g", i32, false)),
		functionSec(1, 3),
		tableSec(table(fref, 4)),
		memorySec(memory(1)),
		globalSec(global(i32, true, i32c(0)), global(i64, true, i64c(0))),
		exportSec(exportFunc("run", 1)),
		elemSec(cat(uleb(nil, 3), op(0), u32vec(1, 2))),
		dataCountSec(1),
		codeSec(vec1(cat(locals, body, op(opEnd))), code(nil, i32c(7))),
		dataSec(cat(uleb(nil, 1), str("abc"))),
	)
}

// skeletonSeeds are valid bodies for skeleton.
func skeletonSeeds() [][]byte {
	return [][]byte{
		localGet(0),
		// i32.const 1 i32.const 2 (loop (type $p) (br_if 0 (i32.const 0))) drop
		cat(i32c(1), i32c(2), op(opLoop, 2), i32c(0), brIf(0), op(opEnd), op(opDrop)),
		// counted loop adding to local 1 (as i32), br_table inside
		cat(countedLoop(0, 1, op(opBlock, blockEmpty, opBlock, blockEmpty), localGet(1), op(opBrTable, 1, 0, 1), op(opEnd), op(opEnd)), localGet(1)),
		cat(localGet(0), call(0), call(2), op(opI32Add), refFunc(2), op(opDrop), i32c(0), callIndirect(3, 0), op(opI32Add)),
		cat(globalGet(0), globalGet(1), op(opI32Add), localTee(1), globalSet(1), globalGet(2), op(0xa7), localGet(1), op(opI32Add)),
		cat(i32c(0), i32c(0), i32c(3), misc(8, 0, 0), misc(9, 0), i32c(8), i32c(0), i32c(3), misc(10, 0, 0),
			i32c(0), i32c(1), i32c(2), misc(11, 0), i32c(8), op(opI32Load, 2, 0)),
		cat(i32x4(1, 2, 3, 4), localGet(0), simd(0x11), simd(0xae), simd(0x80), localTee(5), simd(0x1b, 2),
			i32c(0), localGet(5), simd(0x5a, 2, 0, 1), i32c(0), op(opI32Load, 2, 0), op(opI32Add)),
		cat(i32c(1), i32c(2), localGet(0), op(opSelectT, 1, i32), op(opRefNull, fref, opRefIsNull), op(opI32Add),
			misc(16, 0), op(opI32Add)),
		cat(localGet(0), op(opIf, i32), i32c(1), op(opElse), i32c(2), op(opEnd)),
		// table.fill, table.copy, and a memory.fill of the parameter's length
		cat(i32c(0), op(opRefNull, fref), i32c(1), misc(17, 0), i32c(0), i32c(1), i32c(1), misc(14, 0, 0),
			i32c(0), i32c(0), localGet(0), misc(11, 0), localGet(0)),
	}
}

// FuzzInstrumentBody fuzzes function bodies inside a fixed valid module, so
// most inputs decode and many validate. Beyond FuzzInstrument's property it
// checks that the rewriter is not stricter than wazero: a body wazero
// compiles may only be refused as unsupported, never as malformed.
//
//	go test ./wasmhost/internal/yield -run '^$' -fuzz FuzzInstrumentBody -fuzztime 60s
func FuzzInstrumentBody(f *testing.F) {
	for _, s := range skeletonSeeds() {
		f.Add(s)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(16))
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, body []byte) {
		wasm := skeleton(body)
		checkInstrument(t, rt, wasm)
		if _, err := Instrument(wasm, fuzzConfig); errors.Is(err, ErrMalformed) && compiles(rt, wasm) {
			t.Fatalf("wazero compiles the module, Instrument calls it malformed: %v", err)
		}
	})
}

func TestSkeletonSeedsValid(t *testing.T) {
	rt := wazero.NewRuntime(context.Background())
	defer rt.Close(context.Background())
	for i, s := range skeletonSeeds() {
		wasm := skeleton(s)
		if !compiles(rt, wasm) {
			_, err := rt.CompileModule(context.Background(), wasm)
			t.Errorf("seed %d: wazero rejects it: %v", i, err)
		}
		if _, err := Instrument(wasm, testConfig); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}
