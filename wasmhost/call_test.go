package wasmhost_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

func TestCallHandBuiltHello(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "hello", helloModule(), wasmhost.Limits{})
	res, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != protocol.ActionEnd || len(res.Ops) != 1 || res.Ops[0].Key != "x-hello" || string(res.Ops[0].Value) != "world" {
		t.Fatalf("result %+v, want End with x-hello: world", res)
	}
}

func TestCallUnsupportedPhase(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "hello", helloModule(), wasmhost.Limits{})
	ctx := context.Background()
	for _, c := range []struct {
		phase protocol.Phase
		event uint32
	}{
		{protocol.PhaseLogging, 0},
		{protocol.PhaseEvent, protocol.EventWSText},
		{protocol.Phase(9), 0},
		{protocol.PhaseRequestFilter, protocol.EventWSText},
	} {
		if _, err := m.Call(ctx, c.phase, c.event, nil, protocol.RequestID{}); !errors.Is(err, wasmhost.ErrUnsupportedPhase) {
			t.Errorf("Call(%v, %d) = %v, want ErrUnsupportedPhase", c.phase, c.event, err)
		}
	}
	abiMod := compile(t, h, "abi", testutil.Wasm(t, guestABI), wasmhost.Limits{})
	for _, ev := range []uint32{0, 349, 354} {
		if _, err := abiMod.Call(ctx, protocol.PhaseEvent, ev, nil, protocol.RequestID{}); !errors.Is(err, wasmhost.ErrUnsupportedPhase) {
			t.Errorf("Call(events, %d) = %v, want ErrUnsupportedPhase", ev, err)
		}
	}
	if st := m.Stats(); st.Calls != 0 {
		t.Errorf("refused calls reached an instance: %+v", st)
	}
}

func TestCallInputTooLarge(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "hello", helloModule(), wasmhost.Limits{MaxInput: 1024})
	inv := &protocol.Invocation{Request: protocol.HTTPRequest{Body: make([]byte, 1025)}}
	_, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, inv, protocol.RequestID{})
	if !errors.Is(err, wasmhost.ErrInputTooLarge) || !strings.Contains(err.Error(), "1025 bytes, limit 1024") {
		t.Fatalf("Call = %v, want ErrInputTooLarge", err)
	}
	inv.Request.Body = inv.Request.Body[:1000]
	if _, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, inv, protocol.RequestID{}); err != nil {
		t.Fatalf("Call under the limit: %v", err)
	}
}

// A hand-built module that executes `unreachable`: the call traps, the
// instance is replaced, and the module keeps serving.
func TestCallTrapReplacesInstance(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "trap", trapModule(), wasmhost.Limits{MaxWorkers: 1})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
		var trap *wasmhost.TrapError
		if !errors.As(err, &trap) || trap.Function != "trap" || trap.Phase != protocol.PhaseRequestFilter ||
			!strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("call %d: %v, want a *TrapError about unreachable", i, err)
		}
	}
	st := m.Stats()
	if st.Traps != 3 || st.Discarded != 3 || st.Created != 3 || st.Live != 0 {
		t.Fatalf("stats %+v, want 3 traps, 3 created, 3 discarded, none live", st)
	}
}

// A handler that recurses without end traps with wazero's stack overflow,
// long before its timeout, and its instance is replaced (the stack it grew,
// tens of MiB of host memory, goes with it).
//
//	(func $handle (export "nylon_handle") (param i32 i32) (result i32)
//	  (call $handle (local.get 0) (local.get 1)))
func TestCallDeepRecursionTraps(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	self := uint32(5) // after the three imports, nylon_abi_v1 and nylon_phases
	wasm := buildABI(abiSpec{phases: 1 << 1, handle: func(nylonFuncs) []byte {
		return cat([]byte{opLocalGet, 0, opLocalGet, 1}, call(self))
	}})
	m := compile(t, h, "recurse", wasm, wasmhost.Limits{Timeout: 30 * time.Second, MaxWorkers: 1})
	start := time.Now()
	_, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
	var trap *wasmhost.TrapError
	if !errors.As(err, &trap) || !strings.Contains(err.Error(), "stack overflow") {
		t.Fatalf("Call = %v after %v, want a *TrapError about stack overflow", err, time.Since(start))
	}
	if st := m.Stats(); st.Traps != 1 || st.Discarded != 1 || st.Live != 0 {
		t.Fatalf("stats %+v, want the trapped instance discarded", st)
	}
}

// A hand-built infinite loop is stopped at the timeout.
func TestCallLoopTimesOut(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "loop", loopModule(), wasmhost.Limits{Timeout: 50 * time.Millisecond, MaxWorkers: 1})
	start := time.Now()
	_, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
	if !errors.Is(err, wasmhost.ErrTimeout) {
		t.Fatalf("Call = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("loop ran %v past a 50ms timeout", d)
	}
	if st := m.Stats(); st.Timeouts != 1 || st.Discarded != 1 {
		t.Fatalf("stats %+v, want 1 timeout, 1 discarded", st)
	}
}

// The deadline is per call: an instance serving many short calls in a row
// never hits a timeout shorter than their sum, and after a loop is stopped
// the next instance gets a full timeout of its own again.
func TestCallDeadlineIsPerCall(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	const timeout = 30 * time.Millisecond
	m := compile(t, h, "next", nextModule(), wasmhost.Limits{Timeout: timeout, MaxWorkers: 1})
	for start := time.Now(); time.Since(start) < 5*timeout; {
		if _, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{}); err != nil {
			t.Fatalf("short call after %v: %v", time.Since(start), err)
		}
	}
	if st := m.Stats(); st.Created != 1 || st.Discarded != 0 || st.Timeouts != 0 {
		t.Fatalf("stats %+v, want one instance serving every call", st)
	}

	loop := compile(t, h, "loop", loopModule(), wasmhost.Limits{Timeout: timeout, MaxWorkers: 1})
	for i := range 2 {
		start := time.Now()
		_, err := loop.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
		if !errors.Is(err, wasmhost.ErrTimeout) {
			t.Fatalf("loop %d: Call = %v, want ErrTimeout", i, err)
		}
		if d := time.Since(start); d < timeout {
			t.Fatalf("loop %d stopped after %v, before its %v timeout", i, d, timeout)
		}
	}
	if st := loop.Stats(); st.Timeouts != 2 || st.Discarded != 2 {
		t.Fatalf("stats %+v, want 2 timeouts, 2 discarded", st)
	}
}

// A spinning guest must not hold up the Go runtime: wazero's machine code
// cannot be preempted, so without the yield points Compile adds a stop-the-
// world garbage collection would wait for the loop's whole timeout (here a
// minute). With them, the guest is back in Go code every budget of
// instructions and the collection finishes at once.
func TestSpinningGuestDoesNotStallGC(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "loop", loopModule(), wasmhost.Limits{Timeout: time.Minute, MaxWorkers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	errc := startCall(t, m, func() error {
		_, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
		return err
	})
	gc := make(chan struct{})
	go func() {
		for range 3 {
			runtime.GC()
		}
		close(gc)
	}()
	select {
	case <-gc:
	case <-time.After(20 * time.Second):
		t.Fatal("runtime.GC did not finish while a guest was spinning")
	}
	if len(errc) != 0 {
		t.Fatalf("the loop ended before it was cancelled: %v", <-errc)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v, want context.Canceled", err)
	}
}

// The caller's own context ending stops the call too, with its error.
func TestCallCanceledByCaller(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "loop", loopModule(), wasmhost.Limits{Timeout: time.Minute, MaxWorkers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	errc := startCall(t, m, func() error {
		_, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
		return err
	})
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || errors.Is(err, wasmhost.ErrTimeout) {
			t.Fatalf("Call = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call not stopped by cancellation")
	}
	// A caller's deadline shorter than the function's timeout is a timeout
	// too, and says whose deadline it was.
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if _, err := m.Call(short, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{}); !errors.Is(err, wasmhost.ErrTimeout) ||
		!errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "caller's deadline") {
		t.Fatalf("Call under a 50ms caller deadline = %v, want ErrTimeout and context.DeadlineExceeded", err)
	}
	if st := m.Stats(); st.Discarded != 2 {
		t.Fatalf("stats %+v, want both looping instances discarded", st)
	}
	// A context that is already done never reaches an instance.
	before := m.Stats().Calls
	if _, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Call with a done context = %v", err)
	}
	if m.Stats().Calls != before {
		t.Fatal("a call with a done context ran")
	}
}

func TestCallHostileGuest(t *testing.T) {
	h, logs := newHost(t, wasmhost.Config{})
	wasm := testutil.Wasm(t, guestHostile)
	ctx := context.Background()

	t.Run("infinite loop", func(t *testing.T) {
		m := compile(t, h, "hostile-loop", wasm, wasmhost.Limits{Timeout: 100 * time.Millisecond, MaxWorkers: 1})
		res, err := callMode(ctx, m, "ok")
		mustCallsHeader(t, res, err, "1")
		start := time.Now()
		if _, err := callMode(ctx, m, "loop"); !errors.Is(err, wasmhost.ErrTimeout) {
			t.Fatalf("loop: %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("loop stopped after %v, timeout 100ms", d)
		}
		// The next call runs on a fresh instance: its first call.
		res, err = callMode(ctx, m, "ok")
		mustCallsHeader(t, res, err, "1")
		if st := m.Stats(); st.Timeouts != 1 || st.Discarded != 1 || st.Created != 2 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("sleep", func(t *testing.T) {
		m := compile(t, h, "hostile-sleep", wasm, wasmhost.Limits{Timeout: 100 * time.Millisecond, MaxWorkers: 1})
		start := time.Now()
		if _, err := callMode(ctx, m, "sleep"); !errors.Is(err, wasmhost.ErrTimeout) {
			t.Fatalf("sleep: %v, want ErrTimeout", err)
		}
		d := time.Since(start)
		if d > 3*time.Second {
			t.Fatalf("sleeping guest stopped after %v, timeout 100ms", d)
		}
		t.Logf("sleeping guest stopped after %v (timeout 100ms)", d)
		res, err := callMode(ctx, m, "ok")
		mustCallsHeader(t, res, err, "1")
	})

	t.Run("memory bomb", func(t *testing.T) {
		m := compile(t, h, "hostile-bomb", wasm, wasmhost.Limits{MemoryMB: 24, MaxWorkers: 1, Timeout: 10 * time.Second})
		res, err := callMode(ctx, m, "ok")
		mustCallsHeader(t, res, err, "1")
		_, err = callMode(ctx, m, "bomb")
		if !errors.Is(err, wasmhost.ErrMemoryLimit) || !strings.Contains(err.Error(), "24 MiB") {
			t.Fatalf("bomb: %v, want ErrMemoryLimit", err)
		}
		res, err = callMode(ctx, m, "ok")
		mustCallsHeader(t, res, err, "1")
		if st := m.Stats(); st.MemoryLimits != 1 || st.Discarded != 1 || st.Created != 2 {
			t.Fatalf("stats %+v", st)
		}
		// The Go runtime said why it died, on stderr, into the node log.
		found := false
		for _, r := range logs.matching(t, "guest output") {
			if r["function"] == "hostile-bomb" && r["stream"] == "stderr" && strings.Contains(r["text"].(string), "out of memory") {
				found = true
			}
		}
		if !found {
			t.Error("no stderr record about running out of memory")
		}
	})

	t.Run("panic", func(t *testing.T) {
		m := compile(t, h, "hostile-panic", wasm, wasmhost.Limits{MaxWorkers: 1})
		res, err := callMode(ctx, m, "ok")
		mustCallsHeader(t, res, err, "1")
		_, err = callMode(ctx, m, "panic")
		// A Go guest's fatal panic ends in runtime.abort, an unreachable.
		var trap *wasmhost.TrapError
		if !errors.As(err, &trap) || !strings.Contains(err.Error(), "gopanic") {
			t.Fatalf("panic: %v, want a *TrapError through runtime.gopanic", err)
		}
		res, err = callMode(ctx, m, "ok")
		mustCallsHeader(t, res, err, "1")
		if st := m.Stats(); st.Traps != 1 || st.Discarded != 1 {
			t.Fatalf("stats %+v", st)
		}
		found := false
		for _, r := range logs.matching(t, "guest output") {
			if r["function"] == "hostile-panic" && strings.Contains(r["text"].(string), "hostile guest: boom") {
				found = true
			}
		}
		if !found {
			t.Error("the guest's panic message is not in the log")
		}
	})

	t.Run("out of bounds pointers", func(t *testing.T) {
		m := compile(t, h, "hostile-oob", wasm, wasmhost.Limits{MaxWorkers: 1})
		for _, c := range []struct{ mode, says string }{
			{"oob-key", "nylon.read: key [4294967040, +16) is outside guest memory"},
			{"oob-buf", "nylon.read: buf [4294967040, +64) is outside guest memory"},
			{"oob-write", "nylon.write: a [4294967040, +8) is outside guest memory"},
			{"oob-log", "nylon.log: msg [4294967040, +8) is outside guest memory"},
		} {
			_, err := callMode(ctx, m, c.mode)
			var trap *wasmhost.TrapError
			if !errors.As(err, &trap) || !errors.Is(err, wasmhost.ErrOutOfBounds) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s: %v, want a trap saying %q", c.mode, err, c.says)
			}
			res, err := callMode(ctx, m, "ok")
			mustCallsHeader(t, res, err, "1")
		}
	})

	t.Run("action out of range", func(t *testing.T) {
		m := compile(t, h, "hostile-action", wasm, wasmhost.Limits{MaxWorkers: 1})
		for _, a := range []string{"3", "-1"} {
			if _, err := callMode(ctx, m, "action", "action", a); !errors.Is(err, wasmhost.ErrABI) {
				t.Errorf("action %s: %v, want ErrABI", a, err)
			}
		}
		// Each failed call cost its instance.
		res, err := callMode(ctx, m, "ok")
		mustCallsHeader(t, res, err, "1")
		if st := m.Stats(); st.Discarded != 2 || st.Traps != 2 {
			t.Fatalf("stats %+v, want 2 discarded", st)
		}
	})
}
