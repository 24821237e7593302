package wasmhost_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

func TestValidateRejects(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	five := []byte{i32, i32, i32, i32, i32}
	cases := []struct {
		name string
		wasm []byte
		kind error
		want []string // substrings of the error
	}{
		{"empty", nil, wasmhost.ErrNotWasm, []string{"want magic"}},
		{"text", []byte("(module)\n"), wasmhost.ErrNotWasm, []string{`got "(mod"`}},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00\x00\x00"), wasmhost.ErrNotWasm, []string{"want magic"}},
		{"version 2", []byte("\x00asm\x02\x00\x00\x00"), wasmhost.ErrNotWasm, []string{"version 2, want 1"}},
		{"truncated", append(nextModule()[:40:40], 0xff), wasmhost.ErrCompile, nil},
		{"missing nylon_handle", buildABI(abiSpec{phases: 2, skipExport: "nylon_handle"}), wasmhost.ErrABI,
			[]string{`missing export "nylon_handle" (i32, i32) -> i32`}},
		{"missing marker", buildABI(abiSpec{phases: 2, skipExport: "nylon_abi_v1"}), wasmhost.ErrABI,
			[]string{`missing export "nylon_abi_v1"`}},
		{"missing nylon_phases", buildABI(abiSpec{phases: 2, skipExport: "nylon_phases"}), wasmhost.ErrABI,
			[]string{`missing export "nylon_phases" () -> i32`}},
		{"missing _initialize", buildABI(abiSpec{phases: 2, skipExport: "_initialize"}), wasmhost.ErrABI,
			[]string{`missing export "_initialize"`}},
		{"memory not exported", buildABI(abiSpec{phases: 2, skipExport: "memory"}), wasmhost.ErrABI,
			[]string{`missing export "memory"`}},
		{"no memory", buildABI(abiSpec{phases: 2, noMemory: true}), wasmhost.ErrABI,
			[]string{`missing export "memory"`}},
		{"handle with one param", buildABI(abiSpec{phases: 2, handleSig: &wasmType{[]byte{i32}, []byte{i32}},
			handle: func(nylonFuncs) []byte { return i32Const(0) }}), wasmhost.ErrABI,
			[]string{`export "nylon_handle": signature (i32) -> i32, want (i32, i32) -> i32`}},
		{"handle returning i64", buildABI(abiSpec{phases: 2, handleSig: &wasmType{[]byte{i32, i32}, []byte{i64}},
			handle: func(nylonFuncs) []byte { return []byte{0x42, 0} }}), wasmhost.ErrABI,
			[]string{`export "nylon_handle": signature (i32, i32) -> i64, want (i32, i32) -> i32`}},
		{"foreign import", buildABI(abiSpec{phases: 2,
			extraImports: []wasmImport{{module: "env", name: "foo"}}, extraTypes: []wasmType{{}}}), wasmhost.ErrABI,
			[]string{`import "env"."foo": only "nylon" and "wasi_snapshot_preview1" imports are allowed`}},
		{"unknown nylon function", buildABI(abiSpec{phases: 2,
			extraImports: []wasmImport{{module: "nylon", name: "exec"}}, extraTypes: []wasmType{{}}}), wasmhost.ErrABI,
			[]string{`import "nylon"."exec": no such host function`}},
		{"nylon import with wrong signature", buildABI(abiSpec{phases: 2,
			extraImports: []wasmImport{{module: "nylon", name: "read"}}, extraTypes: []wasmType{{five[:4], []byte{i32}}}}), wasmhost.ErrABI,
			[]string{`import "nylon"."read": signature (i32, i32, i32, i32) -> i32, want (i32, i32, i32, i32, i32) -> i32`}},
		{"unknown wasi function", buildABI(abiSpec{phases: 2,
			extraImports: []wasmImport{{module: "wasi_snapshot_preview1", name: "sock_teleport"}}, extraTypes: []wasmType{{}}}), wasmhost.ErrABI,
			[]string{`import "wasi_snapshot_preview1"."sock_teleport": no such WASI function`}},
		{"wasi import with wrong signature", buildABI(abiSpec{phases: 2,
			extraImports: []wasmImport{{module: "wasi_snapshot_preview1", name: "proc_exit"}}, extraTypes: []wasmType{{nil, []byte{i32}}}}), wasmhost.ErrABI,
			[]string{`import "wasi_snapshot_preview1"."proc_exit": signature () -> i32, want (i32)`}},
		{"several problems at once", buildABI(abiSpec{phases: 2, skipExport: "nylon_phases",
			extraImports: []wasmImport{{module: "env", name: "foo"}}, extraTypes: []wasmType{{}}}), wasmhost.ErrABI,
			[]string{`missing export "nylon_phases"`, `import "env"."foo"`}},
		// nylon_sys is the module of the yield import Compile adds: a guest
		// may not import from it, least of all the yield function itself
		// (it could then be confused with the rewrite's own).
		{"reserved import", buildABI(abiSpec{phases: 2,
			extraImports: []wasmImport{{module: "nylon_sys", name: "exec"}}, extraTypes: []wasmType{{}}}), wasmhost.ErrABI,
			[]string{`import "nylon_sys"."exec": module "nylon_sys" is reserved for the host`}},
		{"own yield import", buildABI(abiSpec{phases: 2,
			extraImports: []wasmImport{{module: "nylon_sys", name: "yield"}}, extraTypes: []wasmType{{nil, []byte{i32}}}}), wasmhost.ErrCompile,
			[]string{"imports the yield function itself"}},
		{"no phases", buildABI(abiSpec{phases: 0}), wasmhost.ErrABI, []string{"nylon_phases returned 0"}},
		{"unknown phase bit", buildABI(abiSpec{phases: 1<<1 | 1<<6}), wasmhost.ErrABI, []string{"nylon_phases returned 0x42"}},
		{"phase bit 0", buildABI(abiSpec{phases: 1}), wasmhost.ErrABI, []string{"nylon_phases returned 0x1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := h.Validate(context.Background(), tc.wasm)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("Validate = %+v, %v; want %v", info, err, tc.kind)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "module: ") {
				t.Errorf("error %q does not start with \"module: \"", err)
			}
			// Compile refuses the same module, naming the function.
			if _, err := h.Compile(context.Background(), "bad", tc.wasm, wasmhost.Limits{}); !errors.Is(err, tc.kind) ||
				!strings.HasPrefix(err.Error(), "function[bad]: ") {
				t.Errorf("Compile = %v, want %v naming function[bad]", err, tc.kind)
			}
		})
	}
}

func TestValidateInitialMemoryOverLimit(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	var m wasmModule
	m.memory = []uint32{40} // 2.5 MiB initial
	m.exportMemory("memory")
	m.exportFunc("nylon_abi_v1", m.fn(nil, nil))
	m.exportFunc("nylon_phases", m.fn(nil, []byte{i32}, i32Const(2)...))
	m.exportFunc("nylon_handle", m.fn([]byte{i32, i32}, []byte{i32}, i32Const(0)...))
	m.exportFunc("_initialize", m.fn(nil, nil))
	_, err := h.Compile(context.Background(), "fat", m.bytes(), wasmhost.Limits{MemoryMB: 2})
	if !errors.Is(err, wasmhost.ErrMemoryLimit) || !strings.Contains(err.Error(), "initial memory is 40 pages (2.5 MiB), limit 2 MiB") {
		t.Fatalf("Compile = %v, want ErrMemoryLimit about the initial memory", err)
	}
	if _, err := h.Compile(context.Background(), "fat", m.bytes(), wasmhost.Limits{MemoryMB: 3}); err != nil {
		t.Fatalf("Compile under a 3 MiB limit: %v", err)
	}
}

// A whole 4 GiB memory (65,536 pages) is reported as such: pages times the
// page size does not fit the uint32 page count.
func TestValidateInitialMemoryOfFourGiB(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	var m wasmModule
	m.memory = []uint32{65536}
	m.exportMemory("memory")
	m.exportFunc("nylon_abi_v1", m.fn(nil, nil))
	m.exportFunc("nylon_phases", m.fn(nil, []byte{i32}, i32Const(2)...))
	m.exportFunc("nylon_handle", m.fn([]byte{i32, i32}, []byte{i32}, i32Const(0)...))
	m.exportFunc("_initialize", m.fn(nil, nil))
	_, err := h.Compile(context.Background(), "huge", m.bytes(), wasmhost.Limits{MemoryMB: 64})
	if !errors.Is(err, wasmhost.ErrMemoryLimit) || !strings.Contains(err.Error(), "initial memory is 65536 pages (4096 MiB), limit 64 MiB") {
		t.Fatalf("Compile = %v, want ErrMemoryLimit reporting 4096 MiB", err)
	}
}

func TestValidateInitTrap(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	var m wasmModule
	m.memory = []uint32{1}
	m.exportMemory("memory")
	m.exportFunc("nylon_abi_v1", m.fn(nil, nil))
	m.exportFunc("nylon_phases", m.fn(nil, []byte{i32}, i32Const(2)...))
	m.exportFunc("nylon_handle", m.fn([]byte{i32, i32}, []byte{i32}, i32Const(0)...))
	m.exportFunc("_initialize", m.fn(nil, nil, opUnreachable))
	_, err := h.Validate(context.Background(), m.bytes())
	if !errors.Is(err, wasmhost.ErrABI) || !strings.Contains(err.Error(), "_initialize") || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Validate = %v, want ErrABI naming _initialize and the trap", err)
	}
}

// A guest that prints why it aborts and then traps in _initialize, as a Go
// guest does when an init function panics ("panic: ..." on stderr, then
// exit code 2): the reason is in the error, which is what an uploader sees
// (422), and not only in the node's log.
func TestValidateInitAbortSaysWhy(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	const why = "panic: sdk: RequestFilter: nil handler"
	text := why + "\n\ngoroutine 1 [running]:\nmain.init.0()\n"
	var m wasmModule
	fdWrite := m.importFunc("wasi_snapshot_preview1", "fd_write", []byte{i32, i32, i32, i32}, []byte{i32})
	m.memory = []uint32{1}
	m.exportMemory("memory")
	// One iovec at 0 pointing at the text at 16; fd_write's count goes to 8.
	iov := []byte{16, 0, 0, 0, byte(len(text)), 0, 0, 0}
	m.data = []wasmData{{0, iov}, {16, []byte(text)}}
	m.exportFunc("nylon_abi_v1", m.fn(nil, nil))
	m.exportFunc("nylon_phases", m.fn(nil, []byte{i32}, i32Const(2)...))
	m.exportFunc("nylon_handle", m.fn([]byte{i32, i32}, []byte{i32}, i32Const(0)...))
	m.exportFunc("_initialize", m.fn(nil, nil, cat(i32Const(2), i32Const(0), i32Const(1), i32Const(8), call(fdWrite),
		[]byte{opDrop, opUnreachable})...))
	_, err := h.Validate(context.Background(), m.bytes())
	if !errors.Is(err, wasmhost.ErrABI) || !strings.Contains(err.Error(), `(guest stderr: "`+why+`")`) {
		t.Fatalf("Validate = %v, want ErrABI with the guest's first stderr line", err)
	}
}

func TestValidateInitLoopTimesOut(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{}.WithInitTimeout(100*time.Millisecond))
	var m wasmModule
	m.memory = []uint32{1}
	m.exportMemory("memory")
	m.exportFunc("nylon_abi_v1", m.fn(nil, nil))
	m.exportFunc("nylon_phases", m.fn(nil, []byte{i32}, opLoop, opBlockVoid, opBr, 0, opEnd, opUnreachable))
	m.exportFunc("nylon_handle", m.fn([]byte{i32, i32}, []byte{i32}, i32Const(0)...))
	m.exportFunc("_initialize", m.fn(nil, nil))
	_, err := h.Validate(context.Background(), m.bytes())
	if !errors.Is(err, wasmhost.ErrTimeout) || !strings.Contains(err.Error(), "nylon_phases") {
		t.Fatalf("Validate = %v, want ErrTimeout in nylon_phases", err)
	}
}

// sleepLoop is a loop that sleeps an hour at a time through WASI
// poll_oneoff (a clock subscription at 0, the event at 64, the count at
// 128): a yield point every iteration would still take a million hours'
// sleeps to notice a deadline, so only the sleep itself can stop it.
//
//	(loop $l (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))) (br $l))
func sleepLoop(poll uint32) []byte {
	return cat([]byte{opLoop, opBlockVoid}, i32Const(0), i32Const(64), i32Const(1), i32Const(128), call(poll),
		[]byte{opDrop, opBr, 0, opEnd})
}

// sleepSubscription is a WASI clock subscription (monotonic, one hour).
func sleepSubscription() []byte {
	b := make([]byte, 48) // userdata 0, tag 0 (clock)
	binary.LittleEndian.PutUint32(b[16:], 1)
	binary.LittleEndian.PutUint64(b[24:], uint64(time.Hour))
	return b
}

// A guest that sleeps in a loop in _initialize or nylon_phases is stopped at
// the start-up deadline like one that spins: its sleeps used to watch only
// the deadline of a call, so Validate (an admin upload, a node's load) hung
// for hours, ten milliseconds at a time.
func TestValidateInitSleepLoopTimesOut(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{}.WithInitTimeout(100*time.Millisecond))
	for _, where := range []string{exportInit, exportPhases} {
		var m wasmModule
		poll := m.importFunc("wasi_snapshot_preview1", "poll_oneoff", []byte{i32, i32, i32, i32}, []byte{i32})
		m.memory = []uint32{1}
		m.exportMemory("memory")
		m.data = []wasmData{{0, sleepSubscription()}}
		phases, init := i32Const(2), []byte(nil)
		if where == exportPhases {
			phases = cat(sleepLoop(poll), phases)
		} else {
			init = sleepLoop(poll)
		}
		m.exportFunc("nylon_abi_v1", m.fn(nil, nil))
		m.exportFunc("nylon_phases", m.fn(nil, []byte{i32}, phases...))
		m.exportFunc("nylon_handle", m.fn([]byte{i32, i32}, []byte{i32}, i32Const(0)...))
		m.exportFunc("_initialize", m.fn(nil, nil, init...))

		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := h.Validate(context.Background(), m.bytes())
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, wasmhost.ErrTimeout) || !strings.Contains(err.Error(), where) {
				t.Fatalf("%s: Validate = %v, want ErrTimeout in %s", where, err, where)
			}
			t.Logf("%s: stopped after %v", where, time.Since(start))
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Validate still running after 5s with a 100ms start-up limit", where)
		}
	}
}

const (
	exportInit   = "_initialize"
	exportPhases = "nylon_phases"
)

func TestValidateGoGuests(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	cases := []struct {
		dir    string
		phases protocol.PhaseSet
	}{
		{guestMinimal, protocol.PhaseSetOf(protocol.PhaseRequestFilter)},
		{guestHostile, protocol.PhaseSetOf(protocol.HTTPPhases[:]...)},
		{guestABI, protocol.PhaseSetOf(append(protocol.HTTPPhases[:], protocol.PhaseEvent)...)},
	}
	for _, tc := range cases {
		wasm := testutil.Wasm(t, tc.dir)
		info, err := h.Validate(context.Background(), wasm)
		if err != nil {
			t.Fatalf("%s: %v", tc.dir, err)
		}
		if info.Phases != tc.phases || info.Size != len(wasm) || info.MemoryPages == 0 {
			t.Errorf("%s: info %+v, want phases %v and size %d", tc.dir, info, tc.phases.Names(), len(wasm))
		}
	}
}
