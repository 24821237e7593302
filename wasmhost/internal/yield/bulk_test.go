package yield

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// bulk simulates the charge before a bulk instruction of cost k: the
// counter falls by k if it stays positive, else yield is called first.
func (s *counter) bulk(k int32) {
	if s.c > 0 && s.c-k > 0 {
		s.c -= k
		return
	}
	s.calls++
	s.c = s.grant
}

// fillsModule fills n bytes k times:
//
//	(memory 1)
//	(func (export "fills") (param $n i32) (param $k i32) (local $i i32)
//	  <countedLoop $k $i: memory.fill (i32.const 0) (i32.const 0) (local.get $n)>)
//
// Yield point costs: 7 at entry (6 + end), 12 per iteration, then the fill's
// charge of n/2.
func fillsModule() []byte {
	return module(
		typeSec(funcType([]byte{i32, i32}, nil)),
		functionSec(0),
		memorySec(memory(1)),
		exportSec(exportFunc("fills", 0)),
		codeSec(code([]byte{1, i32}, countedLoop(1, 2, i32c(0), i32c(0), localGet(0), misc(11, 0)))),
	)
}

// TestBulkCharges checks that yield is called exactly as the charge's
// definition says: the counter falls by n/2 per fill, and a fill that would
// take it to zero or below, or finds it there, calls yield first, even when
// the subtraction would wrap around (a counter near -2^31).
func TestBulkCharges(t *testing.T) {
	cases := []struct {
		budget, grant int32
		n, k          uint64
	}{
		{1000, 1000, 100, 50},
		{1000, 1000, 4096, 10}, // every fill costs more than a budget
		{10, 10, 0, 20},        // empty fills cost nothing
		{5, -1, 2, 5},          // a grant <= 0: every fill calls again
		{5, math.MinInt32, 2, 5},
		{math.MaxInt32, math.MaxInt32, 65536, 100},
		{1 << 20, 1 << 20, 65536, 200},
	}
	for _, c := range cases {
		h := newHost(t, c.grant)
		m := h.mustInstantiate(mustInstrument(t, fillsModule(), withBudget(c.budget)))
		sim := counter{c: c.budget, grant: c.grant}
		for range 2 { // the counter carries over from call to call
			call1(t, m, "fills", c.n, c.k)
			sim.pass(7)
			for range c.k {
				sim.pass(12)
				sim.bulk(int32(c.n / 2))
			}
		}
		if got := h.calls.Load(); got != int64(sim.calls) {
			t.Errorf("budget %d grant %d, %d fills of %d bytes twice: %d yield calls, want %d", c.budget, c.grant, c.k, c.n, got, sim.calls)
		}
	}
}

// TestBulkChargeClamped: a length of 2^29 table entries or more costs
// (2^29-1)*4, not the wrapped n*4, and a memory length of 2^32-1 costs
// 2^31-1: each overdraws a full counter, so yield is called before the
// instruction (which then traps: nothing is that large).
//
//	(table 4 funcref) (memory 1)
//	(func (export "tfill") (param $n i32) (table.fill 0 (i32.const 0) (ref.null func) (local.get $n)))
//	(func (export "mfill") (param $n i32) (memory.fill (i32.const 0) (i32.const 0) (local.get $n)))
func TestBulkChargeClamped(t *testing.T) {
	wasm := module(
		typeSec(funcType([]byte{i32}, nil)),
		functionSec(0, 0),
		tableSec(table(fref, 4)),
		memorySec(memory(1)),
		exportSec(exportFunc("tfill", 0), exportFunc("mfill", 1)),
		codeSec(
			code(nil, i32c(0), op(opRefNull, fref), localGet(0), misc(17, 0)),
			code(nil, i32c(0), i32c(0), localGet(0), misc(11, 0)),
		),
	)
	// Both bodies are 5 instructions: the counter is 2^31-1-5 at the charge.
	cases := []struct {
		fn    string
		n     uint32
		yield bool
	}{
		{"tfill", 1<<29 - 2, false}, // 2^31-8: 2 left
		{"tfill", 1<<29 - 1, true},  // 2^31-4
		{"tfill", 1 << 29, true},
		{"tfill", math.MaxUint32, true}, // n*4 would wrap to -4
		{"mfill", math.MaxUint32, true},
	}
	for _, c := range cases {
		h := newHost(t, math.MaxInt32)
		m := h.mustInstantiate(mustInstrument(t, wasm, withBudget(math.MaxInt32)))
		_, err := m.ExportedFunction(c.fn).Call(context.Background(), uint64(c.n))
		if err == nil || errors.Is(err, errStop) {
			t.Errorf("%s(%d): %v, want an out-of-bounds trap", c.fn, c.n, err)
		}
		if got := h.calls.Load() == 1; got != c.yield {
			t.Errorf("%s(%d): yielded %v, want %v", c.fn, c.n, got, c.yield)
		}
	}
}

// hostileBulk builds a module whose function "run" (also the start
// function if start) executes op forever (loop) or 50 times in a straight
// line, counting the ops that ran in the imported global env.mg:
//
//	(import "env" "mg" (global $ops (mut i32)))
//	(memory 16) (table 1024 funcref)
//	(func $run (export "run")
//	  (loop $l <op> (global.set $ops (i32.add (global.get $ops) (i32.const 1))) (br $l)))
//	(elem func $run × 512)   ;; passive, segment 0
//	(data "\00" × 4096)      ;; passive, segment 0
func hostileBulk(op []byte, loop, start bool) []byte {
	counted := cat(op, globalGet(0), i32c(1), []byte{opI32Add}, globalSet(0))
	var body []byte
	if loop {
		body = cat([]byte{opLoop, blockEmpty}, counted, br(0), []byte{opEnd})
	} else {
		body = bytes.Repeat(counted, 50)
	}
	elems := make([]uint32, 512)
	secs := []section{
		typeSec(funcType(nil, nil)),
		importSec(importGlobal("env", "mg", i32, true)),
		functionSec(0),
		tableSec(table(fref, 1024)),
		memorySec(memory(16)),
		exportSec(exportFunc("run", 0)),
	}
	if start {
		secs = append(secs, startSec(0))
	}
	return module(append(secs,
		elemSec(cat(uleb(nil, 1), []byte{0x00}, u32vec(elems...))),
		dataCountSec(1),
		codeSec(code(nil, body)),
		dataSec(cat(uleb(nil, 1), vec1(make([]byte, 4096)))),
	)...)
}

// The bulk instructions of the hostile modules, each costing more than
// hostileBudget.
var hostileOps = map[string][]byte{
	"memory.fill": cat(i32c(0), i32c(0), i32c(1<<20), misc(11, 0)),
	"memory.copy": cat(i32c(0), i32c(1<<19), i32c(1<<19), misc(10, 0, 0)),
	"memory.init": cat(i32c(0), i32c(0), i32c(4096), misc(8, 0, 0)),
	"table.fill":  cat(i32c(0), op(opRefNull, fref), i32c(1024), misc(17, 0)),
	"table.copy":  cat(i32c(0), i32c(0), i32c(1024), misc(14, 0, 0)),
	"table.init":  cat(i32c(0), i32c(0), i32c(512), misc(12, 0, 0)),
}

const hostileBudget = 1000

// TestBulkLoopsStop: loops of bulk instructions, straight runs of them and
// such a loop in a start function are stopped before the op that follows
// the stopping yield. Counted as one instruction, each loop would run about
// a budget / 7 iterations per yield, and the straight run never yields.
func TestBulkLoopsStop(t *testing.T) {
	const limit = 5 // the yield call that stops the guest
	for name, bulkOp := range hostileOps {
		for _, shape := range []string{"loop", "straight", "start"} {
			t.Run(name+"/"+shape, func(t *testing.T) {
				h := newHost(t, hostileBudget)
				h.limit = limit
				wasm := mustInstrument(t, hostileBulk(bulkOp, shape != "straight", shape == "start"), withBudget(hostileBudget))
				var err error
				if shape == "start" {
					_, err = h.instantiate(wasm)
				} else {
					_, err = h.mustInstantiate(wasm).ExportedFunction("run").Call(context.Background())
				}
				if !errors.Is(err, errStop) {
					t.Fatalf("%v, want %v", err, errStop)
				}
				// Each op overdraws the budget, so each is preceded by a yield.
				if ops := api.DecodeI32(h.rt.Module("env").ExportedGlobal("mg").Get()); ops != limit-1 {
					t.Errorf("%d ops ran before yield call %d stopped the guest, want %d", ops, limit, limit-1)
				}
			})
		}
	}
}

// TestBulkLoopDeadline: a loop filling 16 MiB per iteration, the prober's
// module on a smaller memory, stops at its context's deadline. Charged as
// one instruction it ran for minutes (a budget of 2^20 allowed 150000
// fills between yields).
//
//	(memory 256)
//	(func (export "spin") (loop (memory.fill (i32.const 0) (i32.const 0) (i32.const 16 MiB)) (br 0)))
func TestBulkLoopDeadline(t *testing.T) {
	spin := module(
		typeSec(funcType(nil, nil)),
		functionSec(0),
		memorySec(memory(256)),
		exportSec(exportFunc("spin", 0)),
		codeSec(code(nil, op(opLoop, blockEmpty), i32c(0), i32c(0), i32c(16<<20), misc(11, 0), br(0), op(opEnd))),
	)
	const budget = 1 << 20
	h := newHost(t, budget)
	m := h.mustInstantiate(mustInstrument(t, spin, withBudget(budget)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.ExportedFunction("spin").Call(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("spin: %v, want %v", err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("spin stopped after %v, deadline 50ms", d)
	}
	t.Logf("stopped %v after the call started (deadline 50ms)", time.Since(start))
}

// TestBulkScratchLocal: the scratch local goes after every parameter and
// local, whatever their types, so the function's own locals keep their
// values and indices (and names), also when the declaration count's
// LEB128 grows a byte (127 -> 128 declarations).
//
//	(func (export "mix") (param $a i32) (param $b i64) (result i64) (local $x f64) (local $y i32)
//	  (local.set $y (i32.add (local.get $a) (i32.const 5)))
//	  (local.set $x (f64.const 1.5))                          ;; truncated: 1
//	  (memory.fill (i32.const 0) (local.get $y) (local.get $a))
//	  (i64.add (i64.add (local.get $b) (i64.extend_i32_u (i32.add (local.get $y) (i32.load8_u (i32.const 0)))))
//	           (i64.trunc_f64_s (local.get $x))))
//	(func (export "many") (param $a i32) (result i32) (local i32) × 127 declarations
//	  (local.set 127 (i32.const 42))
//	  (memory.copy (i32.const 8) (i32.const 0) (local.get $a))
//	  (i32.add (local.get 127) (local.get $a)))
func TestBulkScratchLocal(t *testing.T) {
	var decls []byte
	for range 127 {
		decls = append(decls, 1, i32)
	}
	f64c := cat(op(0x44), []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x3f}) // 1.5
	wasm := module(
		typeSec(funcType([]byte{i32, i64}, []byte{i64}), funcType([]byte{i32}, []byte{i32})),
		functionSec(0, 1),
		memorySec(memory(1)),
		exportSec(exportFunc("mix", 0), exportFunc("many", 1)),
		codeSec(
			code([]byte{1, f64, 1, i32},
				localGet(0), i32c(5), op(opI32Add), localSet(3),
				f64c, localSet(2),
				i32c(0), localGet(3), localGet(0), misc(11, 0),
				localGet(1), localGet(3), i32c(0), op(opI32Load8U, 0, 0), op(opI32Add), op(0xad), op(0x7c),
				localGet(2), op(0xb0), op(0x7c),
			),
			code(decls,
				i32c(42), localSet(127),
				i32c(8), i32c(0), localGet(0), misc(10, 0, 0),
				localGet(127), localGet(0), op(opI32Add),
			),
		),
		customSection("name", []byte{nameLocals}, vec1(cat(uleb(nil, 1), uleb(nil, 0), vec(
			cat(uleb(nil, 0), str("a")), cat(uleb(nil, 1), str("b")), cat(uleb(nil, 2), str("x")), cat(uleb(nil, 3), str("y")))))),
	)
	h := newHost(t, 3)
	res := sameBehaviour(t, h, wasm, withBudget(3), inv("mix", 10, 100), inv("many", 7))
	if res[0][0] != 100+15+15+1 || res[1][0] != 49 {
		t.Errorf("mix(10, 100) = %d, want 131; many(7) = %d, want 49", res[0][0], res[1][0])
	}
	// The local names are copied: index 3 is still $y.
	if out := mustInstrument(t, wasm, withBudget(3)); !strings.Contains(string(out), "\x03\x01y") {
		t.Error("local name $y (index 3) lost")
	}
}

// TestBulkExactOutput pins the charge's encoding and the scratch local's
// declaration.
func TestBulkExactOutput(t *testing.T) {
	// (module (memory 1) (func (export "f") (param i32) (local i64)
	//   (memory.fill (i32.const 0) (i32.const 0) (local.get 0))))
	in := module(
		typeSec(funcType([]byte{i32}, nil)),
		functionSec(0),
		memorySec(memory(1)),
		exportSec(exportFunc("f", 0)),
		codeSec(code([]byte{1, i64}, i32c(0), i32c(0), localGet(0), misc(11, 0))),
	)
	yp := func(cost uint32) []byte {
		return cat(globalGet(0), i32c(0), op(0x4a), op(opIf, blockEmpty),
			globalGet(0), op(opI32Const), padded(cost), op(opI32Sub), globalSet(0),
			op(opElse), call(0), globalSet(0), op(opEnd))
	}
	const s = 2 // after the parameter and the i64
	charge := cat(localTee(s), globalGet(0), localGet(s), i32c(1), op(0x76), op(opI32Sub), localTee(s),
		i32c(0), op(0x4a), globalGet(0), i32c(0), op(0x4a), op(0x71),
		op(opIf, blockEmpty), localGet(s), globalSet(0), op(opElse), call(0), globalSet(0), op(opEnd))
	body := cat([]byte{2, 1, i64, 1, i32}, yp(5), i32c(0), i32c(0), localGet(0), charge, misc(11, 0), op(opEnd))
	want := module(
		typeSec(funcType([]byte{i32}, nil), funcType(nil, []byte{i32})),
		importSec(importFunc("nylon_sys", "yield", 1)),
		functionSec(0),
		memorySec(memory(1)),
		globalSec(global(i32, true, i32c(10))),
		exportSec(exportFunc("f", 1)),
		codeSec(cat(uleb(nil, uint64(len(body))), body)),
	)
	if got := mustInstrument(t, in, testConfig); !bytes.Equal(got, want) {
		t.Errorf("output\n% x\nwant\n% x", got, want)
	}
}
