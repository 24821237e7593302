package yield

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// countedLoop runs body n times, n and i being locals (i counts from its
// current value, normally 0):
//
//	block
//	  local.get $n  i32.eqz  br_if 0
//	  loop
//	    body...
//	    local.get $i  i32.const 1  i32.add  local.tee $i  local.get $n  i32.lt_s  br_if 0
//	  end
//	end
//
// The loop's region costs len(body instructions) + 8; the enclosing region
// gets 6 (block, local.get, i32.eqz, br_if, loop, end).
func countedLoop(n, i uint32, body ...[]byte) []byte {
	return cat(
		op(opBlock, blockEmpty), localGet(n), op(opI32Eqz), brIf(0),
		op(opLoop, blockEmpty),
		cat(body...),
		localGet(i), i32c(1), op(opI32Add), localTee(i), localGet(n), op(opI32LtS), brIf(0),
		op(opEnd),
		op(opEnd),
	)
}

// sumModule has no imports and no globals:
//
//	(func (export "sum") (param $n i32) (result i32) (local $i i32) (local $acc i32)
//	  <countedLoop $n $i: acc += i>
//	  local.get $acc)
//
// Yield point costs: 8 at entry (6 + local.get + end), 12 per iteration.
func sumModule() []byte {
	return module(
		typeSec(funcType([]byte{i32}, []byte{i32})),
		functionSec(0),
		exportSec(exportFunc("sum", 0)),
		codeSec(code([]byte{2, i32},
			countedLoop(0, 1, localGet(2), localGet(1), op(opI32Add), localSet(2)),
			localGet(2),
		)),
	)
}

func TestSumLoop(t *testing.T) {
	h := newHost(t, 10)
	for _, n := range []uint64{0, 1, 2, 100, 1000} {
		res := sameBehaviour(t, h, sumModule(), testConfig, inv("sum", n))
		if want := n * (n - 1) / 2; n > 0 && res[0][0] != want {
			t.Errorf("sum(%d) = %d, want %d", n, res[0][0], want)
		}
	}
}

// TestYieldCalls checks that the import is called exactly as often as the
// counter's definition says, for several budgets, grants and loop counts,
// including repeated calls on one instance (the counter carries over).
func TestYieldCalls(t *testing.T) {
	cases := []struct {
		budget, grant int32
		ns            []uint64
	}{
		{10, 10, []uint64{100}},
		{1, 1, []uint64{1000}},
		{1000, 5, []uint64{0}},
		{3, 3, []uint64{5, 0, 7, 100}},
		{1 << 20, 1 << 20, []uint64{1000}},
		{50, -1, []uint64{30}}, // a grant <= 0 makes every yield point call again
	}
	for _, c := range cases {
		h := newHost(t, c.grant)
		m := h.mustInstantiate(mustInstrument(t, sumModule(), withBudget(c.budget)))
		sim := counter{c: c.budget, grant: c.grant}
		for _, n := range c.ns {
			call1(t, m, "sum", n)
			sim.pass(8)
			for range n {
				sim.pass(12)
			}
			if got := h.calls.Load(); got != int64(sim.calls) {
				t.Errorf("budget %d grant %d after sum(%d) of %v: %d yield calls, want %d", c.budget, c.grant, n, c.ns, got, sim.calls)
			}
		}
	}
	// The brief's reference point: 100 iterations of 12 instructions with a
	// budget of 100 yield about every 100 instructions.
	h := newHost(t, 100)
	call1(t, h.mustInstantiate(mustInstrument(t, sumModule(), withBudget(100))), "sum", 100)
	if got := h.calls.Load(); got < 10 || got > 13 {
		t.Errorf("sum(100) with budget 100: %d yield calls, want about 1208/100", got)
	}
}

// TestRecursion: function entries are yield points, so recursion without
// loops is metered too.
//
//	(func $fib (export "fib") (param i32) (result i32)
//	  (if (result i32) (i32.lt_s (local.get 0) (i32.const 2))
//	    (then (local.get 0))
//	    (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
//	                   (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
func TestRecursion(t *testing.T) {
	wasm := module(
		typeSec(funcType([]byte{i32}, []byte{i32})),
		functionSec(0),
		exportSec(exportFunc("fib", 0)),
		codeSec(code(nil,
			localGet(0), i32c(2), op(opI32LtS), op(opIf, i32),
			localGet(0),
			op(opElse),
			localGet(0), i32c(1), op(opI32Sub), call(0),
			localGet(0), i32c(2), op(opI32Sub), call(0),
			op(opI32Add),
			op(opEnd),
		)),
	)
	const cost = 17 // instructions of the body, both ends included
	h := newHost(t, 100)
	res := sameBehaviour(t, h, wasm, withBudget(100), inv("fib", 15))
	if res[0][0] != 610 {
		t.Fatalf("fib(15) = %d", res[0][0])
	}
	sim := counter{c: 100, grant: 100}
	for range 2*987 - 1 { // calls of fib for fib(15): 2*fib(16)-1
		sim.pass(cost)
	}
	if got := h.calls.Load(); got != int64(sim.calls) {
		t.Errorf("%d yield calls, want %d", got, sim.calls)
	}
}

// TestExactOutput pins the encoding: sections created in order, the new
// type, import and global, the shifted export, and the yield points with
// their costs.
func TestExactOutput(t *testing.T) {
	// (module (func (export "f") (loop)))
	in := module(
		typeSec(funcType(nil, nil)),
		functionSec(0),
		exportSec(exportFunc("f", 0)),
		codeSec(code(nil, op(opLoop, blockEmpty), op(opEnd))),
	)
	yp := func(cost uint32) []byte {
		// global.get 0  i32.const 0  i32.gt_s  if
		//   global.get 0  i32.const cost  i32.sub  global.set 0
		// else  call 0  global.set 0  end
		return cat(globalGet(0), i32c(0), op(0x4a), op(opIf, blockEmpty),
			globalGet(0), op(opI32Const), padded(cost), op(opI32Sub), globalSet(0),
			op(opElse), call(0), globalSet(0), op(opEnd))
	}
	body := cat(op(0), yp(2), op(opLoop, blockEmpty), yp(1), op(opEnd), op(opEnd))
	want := module(
		typeSec(funcType(nil, nil), funcType(nil, []byte{i32})),
		importSec(importFunc("nylon_sys", "yield", 1)),
		functionSec(0),
		globalSec(global(i32, true, i32c(10))),
		exportSec(exportFunc("f", 1)),
		codeSec(cat(uleb(nil, uint64(len(body))), body)),
	)
	got := mustInstrument(t, in, testConfig)
	if !bytes.Equal(got, want) {
		t.Errorf("output\n% x\nwant\n% x", got, want)
	}
	h := newHost(t, 10)
	call1(t, h.mustInstantiate(got), "f")
}

// padded encodes v as a 5-byte signed LEB128.
func padded(v uint32) []byte {
	return []byte{byte(v)&0x7f | 0x80, byte(v>>7)&0x7f | 0x80, byte(v>>14)&0x7f | 0x80, byte(v>>21)&0x7f | 0x80, byte(v>>28) & 0x07}
}

// importsModule has imported functions, globals, a memory and a table, and
// defined globals, one initialised from an imported one:
//
//	(import "env" "add" (func $add (param i32 i32) (result i32)))  ;; func 0
//	(import "env" "g" (global $g i32))                              ;; global 0
//	(import "env" "mem" (memory 1))
//	(import "env" "tab" (table 4 funcref))
//	(import "env" "mg" (global $mg (mut i32)))                      ;; global 1
//	(global $a (mut i32) (global.get $g))                            ;; global 2
//	(global $b (mut i64) (i64.const 5))                              ;; global 3
//	(func $double (param i32) (result i32) (call $add (local.get 0) (local.get 0)))
//	(func (export "run") (param $n i32) (result i32) (local $i i32)
//	  <countedLoop $n $i: global.set $a (call $add (global.get $a) (call $double (i32.const 1)))>
//	  (global.set $mg (global.get $a))
//	  (i32.store (i32.const 0) (global.get $a))
//	  (i32.add (i32.add (global.get $mg) (i32.load (i32.const 0))) (global.get $g)))
//	(func (export "b") (result i64) (global.get $b))
func importsModule() []byte {
	return module(
		typeSec(funcType([]byte{i32, i32}, []byte{i32}), funcType([]byte{i32}, []byte{i32}), funcType(nil, []byte{i64})),
		importSec(
			importFunc("env", "add", 0),
			importGlobal("env", "g", i32, false),
			importMemory("env", "mem", 1),
			importTable("env", "tab", 4),
			importGlobal("env", "mg", i32, true),
		),
		functionSec(1, 1, 2),
		globalSec(global(i32, true, globalGet(0)), global(i64, true, i64c(5))),
		exportSec(exportFunc("run", 2), exportFunc("b", 3)),
		codeSec(
			code(nil, localGet(0), localGet(0), call(0)),
			code([]byte{1, i32},
				countedLoop(0, 1, globalGet(2), i32c(1), call(1), call(0), globalSet(2)),
				globalGet(2), globalSet(1),
				i32c(0), globalGet(2), op(opI32Store, 2, 0),
				globalGet(1), i32c(0), op(opI32Load, 2, 0), op(opI32Add), globalGet(0), op(opI32Add),
			),
			code(nil, globalGet(3)),
		),
	)
}

func TestImportsAndGlobals(t *testing.T) {
	h := newHost(t, 3)
	res := sameBehaviour(t, h, importsModule(), withBudget(3), inv("run", 10), inv("b"), inv("run", 0))
	// a = 7 + 2*10 = 27; mg = 27; mem = 27; + g (7).
	if res[0][0] != 27+27+7 {
		t.Errorf("run(10) = %d, want 61", res[0][0])
	}
	if res[1][0] != 5 {
		t.Errorf("b() = %d, want 5", res[1][0])
	}
	if h.calls.Load() == 0 {
		t.Error("yield was never called")
	}
}

// multiValueModule has loops and blocks with parameters and several results,
// their block types being type indices:
//
//	(type $fib (func (param i32 i32 i32) (result i32 i32 i32)))
//	(type $two (func (result i32 i32)))
//	(func (export "fib") (param $n i32) (result i32) (local $a i32) (local $b i32) (local $k i32)
//	  (i32.const 0) (i32.const 1) (local.get $n)
//	  (loop (type $fib)                        ;; (a b k) -> (b a+b k-1) while k-1 > 0
//	    (local.set $k) (local.set $b) (local.set $a)
//	    (local.get $b) (i32.add (local.get $a) (local.get $b)) (local.tee $k (i32.sub (local.get $k) (i32.const 1)))
//	    (br_if 0 (i32.lt_s (i32.const 0) (local.get $k))))
//	  (drop) (drop))
//	(func $pair (type $two) (i32.const 3) (i32.const 4))
//	(func (export "pair") (result i32)
//	  (call $pair)
//	  (block (type $add) (i32.add))            ;; (param i32 i32) (result i32)
//	  (if (type $inc) (i32.const 1) (then (i32.const 10) (i32.add)) (else (i32.const 20) (i32.add))))
func multiValueModule() []byte {
	return module(
		typeSec(
			funcType([]byte{i32, i32, i32}, []byte{i32, i32, i32}), // 0 $fib
			funcType(nil, []byte{i32, i32}),                        // 1 $two
			funcType([]byte{i32}, []byte{i32}),                     // 2 $inc and fib's type
			funcType([]byte{i32, i32}, []byte{i32}),                // 3 $add
			funcType(nil, []byte{i32}),                             // 4
		),
		functionSec(2, 1, 4),
		exportSec(exportFunc("fib", 0), exportFunc("pair", 2)),
		codeSec(
			code([]byte{3, i32},
				i32c(0), i32c(1), localGet(0),
				op(opLoop, 0),
				localSet(3), localSet(2), localSet(1),
				localGet(2), localGet(1), localGet(2), op(opI32Add),
				localGet(3), i32c(1), op(opI32Sub), localTee(3),
				i32c(0), localGet(3), op(opI32LtS), brIf(0),
				op(opEnd),
				op(opDrop), op(opDrop),
			),
			code(nil, i32c(3), i32c(4)),
			code(nil,
				call(1),
				op(opBlock, 3), op(opI32Add), op(opEnd),
				i32c(1), op(opIf, 2), i32c(10), op(opI32Add), op(opElse), i32c(20), op(opI32Add), op(opEnd),
			),
		),
	)
}

func TestMultiValue(t *testing.T) {
	h := newHost(t, 2)
	fib := []uint64{0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55}
	for n := 1; n <= 10; n++ {
		res := sameBehaviour(t, h, multiValueModule(), withBudget(2), inv("fib", uint64(n)))
		if res[0][0] != fib[n] {
			t.Errorf("fib(%d) = %d, want %d", n, res[0][0], fib[n])
		}
	}
	if res := sameBehaviour(t, h, multiValueModule(), withBudget(2), inv("pair")); res[0][0] != 17 {
		t.Errorf("pair() = %d, want 17", res[0][0])
	}
}

func TestInfiniteLoopStops(t *testing.T) {
	// (func (export "spin") (loop (br 0)))
	spin := module(
		typeSec(funcType(nil, nil)),
		functionSec(0),
		exportSec(exportFunc("spin", 0)),
		codeSec(code(nil, op(opLoop, blockEmpty), br(0), op(opEnd))),
	)
	t.Run("panic", func(t *testing.T) {
		h := newHost(t, 100)
		h.limit = 5
		m := h.mustInstantiate(mustInstrument(t, spin, withBudget(100)))
		_, err := m.ExportedFunction("spin").Call(context.Background())
		if !errors.Is(err, errStop) {
			t.Fatalf("spin: %v, want %v", err, errStop)
		}
		if got := h.calls.Load(); got != 5 {
			t.Errorf("%d yield calls, want 5", got)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		h := newHost(t, 1000)
		m := h.mustInstantiate(mustInstrument(t, spin, withBudget(1000)))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := m.ExportedFunction("spin").Call(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("spin: %v, want %v", err, context.DeadlineExceeded)
		}
	})
}

func TestDeterministicAndInputUntouched(t *testing.T) {
	for name, wasm := range testModules() {
		orig := bytes.Clone(wasm)
		a := mustInstrument(t, wasm, testConfig)
		b := mustInstrument(t, wasm, testConfig)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two runs differ", name)
		}
		if !bytes.Equal(wasm, orig) {
			t.Errorf("%s: input modified", name)
		}
	}
}

// testModules are the hand-built modules of the tests, also the fuzz seeds.
func testModules() map[string][]byte {
	return map[string][]byte{
		"sum":        sumModule(),
		"imports":    importsModule(),
		"multivalue": multiValueModule(),
		"refs":       refsModule(),
		"names":      namesModule(),
		"simd":       simdModule(),
		"brtable":    brTableModule(),
		"bulk":       bulkModule(),
		"fills":      fillsModule(),
		"hostile":    hostileBulk(hostileOps["table.init"], true, true),
		"grow":       growModule(table(fref, 0), tableMax(xref, 1, 10)),
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Module: "", Name: "yield", Budget: 1},
		{Module: "m", Name: "", Budget: 1},
		{Module: "m", Name: "\xff", Budget: 1},
		{Module: "m", Name: "y", Budget: 0},
		{Module: "m", Name: "y", Budget: -5},
		{Module: string(make([]byte, 2000)), Name: "y", Budget: 1},
	} {
		if _, err := Instrument(sumModule(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+.20v: %v, want ErrInvalidConfig", cfg, err)
		}
	}
}
