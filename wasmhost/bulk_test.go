package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Bulk memory and table instructions, and the few others these tests need.
var (
	refNullFunc = []byte{0xd0, 0x70}
	memoryGrow  = []byte{0x40, 0x00}
	memoryFill  = []byte{0xfc, 0x0b, 0x00}
	memoryCopy  = []byte{0xfc, 0x0a, 0x00, 0x00}
	tableGrow   = []byte{0xfc, 0x0f, 0x00}
	tableFill   = []byte{0xfc, 0x11, 0x00}
	tableCopy   = []byte{0xfc, 0x0e, 0x00, 0x00}
	i32Eq       = []byte{0x46}
	i32Ne       = []byte{0x47}
	i32And      = []byte{0x71}
	// ifNextElseError turns a condition into nylon_handle's result: Next if
	// it holds, else Error.
	ifNextElseError = cat([]byte{0x04, i32}, i32Const(0), []byte{0x05}, i32Const(2), []byte{opEnd})
)

// spin is `loop <op> br 0 end unreachable`.
func spin(op []byte) []byte {
	return cat([]byte{opLoop, opBlockVoid}, op, []byte{opBr, 0, opEnd, opUnreachable})
}

// The hostile loops: each iteration moves 16 MiB (2^21 table entries of 8
// bytes) with one instruction. Counted as one instruction each, as before
// bulk instructions were charged by their length, they ran about 150000
// iterations (minutes) between two checks of the deadline.
var bulkLoops = []struct {
	name          string
	op            []byte
	memory, table []uint32
}{
	{"memory.fill", cat(i32Const(0), i32Const(0), i32Const(16<<20), memoryFill), []uint32{256}, nil},
	{"memory.copy", cat(i32Const(0), i32Const(8<<20), i32Const(8<<20), memoryCopy), []uint32{256}, nil},
	{"table.fill", cat(i32Const(0), refNullFunc, i32Const(1<<20), tableFill), nil, []uint32{1 << 20}},
	{"table.copy", cat(i32Const(0), i32Const(1<<19), i32Const(1<<19), tableCopy), nil, []uint32{1 << 20}},
}

// bulkLoopModule is the prober's module on 16 MiB of memory: nylon_handle
// fills it in a loop forever.
//
//	(memory 256)
//	(func (export "nylon_handle") (param i32 i32) (result i32)
//	  (loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 0x1000000)) (br $l))
//	  (unreachable))
func bulkLoopModule() []byte {
	l := bulkLoops[0]
	return buildABI(abiSpec{phases: 1 << 1, memory: l.memory, handle: func(nylonFuncs) []byte { return spin(l.op) }})
}

// A loop of huge bulk instructions is stopped at the call's timeout like
// any other loop, and the instance is replaced.
func TestCallBulkLoopTimesOut(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	for _, l := range bulkLoops {
		t.Run(l.name, func(t *testing.T) {
			wasm := buildABI(abiSpec{phases: 1 << 1, memory: l.memory, table: l.table,
				handle: func(nylonFuncs) []byte { return spin(l.op) }})
			m := compile(t, h, l.name, wasm, wasmhost.Limits{Timeout: 100 * time.Millisecond, MaxWorkers: 1})
			for i := range 2 {
				start := time.Now()
				_, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
				if !errors.Is(err, wasmhost.ErrTimeout) {
					t.Fatalf("call %d: %v, want ErrTimeout", i, err)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Fatalf("call %d: stopped after %v, timeout 100ms", i, d)
				}
			}
			if st := m.Stats(); st.Timeouts != 2 || st.Discarded != 2 || st.Created != 2 {
				t.Fatalf("stats %+v, want 2 timeouts, 2 instances created and discarded", st)
			}
		})
	}
}

// Two guests filling memory in a loop, one per core, as the prober ran
// them: the garbage collector and other functions keep running, and closing
// the module (what a node's drain does at its deadline) stops them. Before
// bulk instructions were charged, the collector's stop-the-world phase
// waited for the loops, freezing the whole process, and Close never
// returned.
func TestBulkLoopDoesNotStallHost(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "fill", bulkLoopModule(), wasmhost.Limits{Timeout: time.Minute, MaxWorkers: 2})
	next := compile(t, h, "next", nextModule(), wasmhost.Limits{MaxWorkers: 1})
	call := func() error {
		_, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
		return err
	}
	first := startCall(t, m, call)
	second := startCall(t, m, call)

	done := make(chan error, 1)
	go func() {
		for range 3 {
			runtime.GC()
		}
		_, err := next.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("another function's call: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("runtime.GC and another function's call did not finish while two guests were filling memory")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := m.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want context.DeadlineExceeded", err)
	}
	for _, errc := range []<-chan error{first, second} {
		select {
		case err := <-errc:
			if !errors.Is(err, wasmhost.ErrPoolClosed) {
				t.Fatalf("call stopped by Close = %v, want ErrPoolClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("call not stopped by Close")
		}
	}
}

// The same loop in _initialize fails the upload at the init timeout.
func TestValidateInitBulkLoopTimesOut(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{}.WithInitTimeout(200*time.Millisecond))
	l := bulkLoops[0]
	wasm := buildABI(abiSpec{phases: 1 << 1, memory: l.memory, initialize: cat([]byte{opLoop, opBlockVoid}, l.op, []byte{opBr, 0, opEnd})})
	start := time.Now()
	_, err := h.Validate(context.Background(), wasm)
	if !errors.Is(err, wasmhost.ErrTimeout) || !strings.Contains(err.Error(), "_initialize did not finish") {
		t.Fatalf("Validate = %v, want ErrTimeout in _initialize", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Validate returned after %v, init timeout 200ms", d)
	}
}

// tableGrowModule is the prober's table bomb, with a check that growing
// within the cap still works:
//
//	(table 0 funcref)
//	(func (export "nylon_handle") (param i32 i32) (result i32)
//	  (i32.and
//	    (i32.ne (table.grow 0 (ref.null func) (i32.const 1000)) (i32.const -1))
//	    (i32.eq (table.grow 0 (ref.null func) (i32.const 0x1000000)) (i32.const -1)))
//	  (if (result i32) (then (i32.const 0)) (else (i32.const 2))))  ;; Next, else Error
func tableGrowModule() []byte {
	return buildABI(abiSpec{phases: 1 << 1, table: []uint32{0}, handle: func(nylonFuncs) []byte {
		return cat(
			refNullFunc, i32Const(1000), tableGrow, i32Const(-1), i32Ne,
			refNullFunc, i32Const(1<<24), tableGrow, i32Const(-1), i32Eq, i32And,
			ifNextElseError)
	}})
}

// Tables are capped at 2^20 entries: table.grow past it fails (-1) instead
// of taking the node's memory (the prober's calls took it from 0.5 to 6 GB
// with memory_mb=1), and a module declaring more is refused.
func TestTableGrowBounded(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "tables", tableGrowModule(), wasmhost.Limits{MemoryMB: 1, MaxWorkers: 1})
	for i := range 4 {
		res, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
		if err != nil || res.Action != protocol.ActionNext {
			t.Fatalf("call %d: action %v, err %v; want Next: growing by 1000 works, by 2^24 fails", i, res.Action, err)
		}
	}

	for _, c := range []struct {
		table []uint32
		err   error
	}{
		{[]uint32{1 << 20}, nil},
		{[]uint32{1<<20 + 1}, wasmhost.ErrMemoryLimit},
		{[]uint32{10, 1 << 30}, nil}, // a larger maximum is lowered
		{[]uint32{1 << 27}, wasmhost.ErrMemoryLimit},
	} {
		wasm := buildABI(abiSpec{phases: 1 << 1, table: c.table})
		_, err := h.Validate(context.Background(), wasm)
		if !errors.Is(err, c.err) {
			t.Errorf("table %v: %v, want %v", c.table, err, c.err)
		}
		if c.err != nil && !strings.Contains(err.Error(), fmt.Sprintf("tables declare %d initial entries, limit 1048576", c.table[0])) {
			t.Errorf("table %v: %q does not say why", c.table, err)
		}
	}
}

// memory.grow stops at Limits.MemoryMB (the host's allocator refuses), and
// the instance that hit its limit is replaced after the call.
//
//	(memory 1)
//	(func (export "nylon_handle") (param i32 i32) (result i32)
//	  (i32.and (i32.and
//	    (i32.eq (memory.grow (i32.const 15)) (i32.const 1))         ;; to 1 MiB: the limit
//	    (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
//	    (i32.eq (memory.grow (i32.const 65535)) (i32.const -1)))
//	  (if (result i32) (then (i32.const 0)) (else (i32.const 2))))
func TestMemoryGrowBounded(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	wasm := buildABI(abiSpec{phases: 1 << 1, handle: func(nylonFuncs) []byte {
		return cat(
			i32Const(15), memoryGrow, i32Const(1), i32Eq,
			i32Const(1), memoryGrow, i32Const(-1), i32Eq, i32And,
			i32Const(65535), memoryGrow, i32Const(-1), i32Eq, i32And,
			ifNextElseError)
	}})
	m := compile(t, h, "grow", wasm, wasmhost.Limits{MemoryMB: 1, MaxWorkers: 1})
	for i := range 2 {
		res, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
		if err != nil || res.Action != protocol.ActionNext {
			t.Fatalf("call %d: action %v, err %v; want Next: memory grows to 1 MiB and no further", i, res.Action, err)
		}
	}
	if st := m.Stats(); st.Discarded != 2 || st.Created != 2 {
		t.Fatalf("stats %+v, want both instances discarded at their limit", st)
	}
}
