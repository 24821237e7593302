package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// 100 callers share 4 instances. The guest sets a global busy flag for the
// length of a call (spinning and calling the host meanwhile) and answers
// Error "concurrent" if it finds it set, so a second caller let onto a busy
// instance would be seen.
func TestPoolConcurrentCallers(t *testing.T) {
	const callers, perCaller, workers = 100, 3, 4
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "busy", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: workers, Timeout: 30 * time.Second})

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		maxInUse int
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // watch the pool while the callers run
		defer close(sampled)
		for {
			st := m.Stats()
			mu.Lock()
			maxInUse = max(maxInUse, st.InUse)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perCaller; j++ {
				res, err := callMode(context.Background(), m, "busy")
				if err == nil && (res.Action != protocol.ActionNext || res.Error != "") {
					err = fmt.Errorf("action %v error %q", res.Action, res.Error)
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled

	if len(failures) > 0 {
		t.Fatalf("%d calls failed, first: %s", len(failures), failures[0])
	}
	st := m.Stats()
	// The calls sleep, so they pile up: every instance was busy at some
	// point, and never more than the pool holds.
	if st.Calls != callers*perCaller || st.Created != workers || st.Live != workers || st.Discarded != 0 || maxInUse != workers {
		t.Fatalf("stats %+v, max in use %d; want %d calls on exactly %d instances", st, maxInUse, callers*perCaller, workers)
	}
	if st.InUse != 0 || st.Waiting != 0 {
		t.Fatalf("stats %+v after all calls returned", st)
	}
}

// runLoop starts a call of the hostile guest's loop mode and waits until it
// holds an instance.
func runLoop(t *testing.T, m *wasmhost.Module) <-chan error {
	t.Helper()
	return startCall(t, m, func() error {
		_, err := callMode(context.Background(), m, "loop")
		return err
	})
}

// startCall runs call, a call of m, on a goroutine of its own and waits
// until it holds an instance; the channel gets its error.
func startCall(t *testing.T, m *wasmhost.Module, call func() error) <-chan error {
	t.Helper()
	before := m.Stats().InUse
	errc := make(chan error, 1)
	go func() { errc <- call() }()
	testutil.Eventually(t, 10*time.Second, 2*time.Millisecond, func() error {
		if m.Stats().InUse <= before {
			return errors.New("call not running yet")
		}
		return nil
	})
	return errc
}

func TestPoolExhausted(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "one", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: 1, Timeout: 300 * time.Millisecond})
	errc := runLoop(t, m)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := callMode(ctx, m, "ok")
	if !errors.Is(err, wasmhost.ErrPoolExhausted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call on a full pool = %v, want ErrPoolExhausted and context.DeadlineExceeded", err)
	}
	if err := <-errc; !errors.Is(err, wasmhost.ErrTimeout) {
		t.Fatalf("loop: %v", err)
	}
	// A waiting caller gets the instance as soon as one is free.
	errc = runLoop(t, m)
	res, err := callMode(context.Background(), m, "ok")
	mustCallsHeader(t, res, err, "1")
	<-errc
}

func TestPoolWarm(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "warm", testutil.Wasm(t, guestMinimal), wasmhost.Limits{MaxWorkers: 3})
	if st := m.Stats(); st.Live != 1 || st.Idle != 1 || st.Created != 1 {
		t.Fatalf("after Compile: %+v, want the one instance Compile used", st)
	}
	if err := m.Warm(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Live != 3 || st.Idle != 3 || st.Created != 3 {
		t.Fatalf("after Warm(10): %+v, want MaxWorkers (3) idle instances", st)
	}
}

// Close lets a running call finish, then refuses calls.
func TestModuleCloseWaitsForCalls(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "closing", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: 1, Timeout: 300 * time.Millisecond})
	errc := runLoop(t, m)

	// A caller waiting for the instance is released by Close.
	waiter := make(chan error, 1)
	go func() {
		_, err := callMode(context.Background(), m, "ok")
		waiter <- err
	}()
	testutil.Eventually(t, 5*time.Second, 2*time.Millisecond, func() error {
		if m.Stats().Waiting == 0 {
			return errors.New("no waiter yet")
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The call had ended at its own timeout before Close returned (the
	// counter moves before the instance goes back), not stopped by Close.
	if st := m.Stats(); st.Timeouts != 1 {
		t.Fatalf("Close returned before the in-flight call ended: %+v", st)
	}
	if err := <-errc; !errors.Is(err, wasmhost.ErrTimeout) {
		t.Fatalf("in-flight call: %v, want it to run to its own timeout", err)
	}
	if err := <-waiter; !errors.Is(err, wasmhost.ErrPoolClosed) {
		t.Fatalf("waiting caller: %v, want ErrPoolClosed", err)
	}
	if _, err := callMode(context.Background(), m, "ok"); !errors.Is(err, wasmhost.ErrPoolClosed) {
		t.Fatalf("call after Close: %v, want ErrPoolClosed", err)
	}
	if st := m.Stats(); st.Live != 0 {
		t.Fatalf("stats after Close: %+v", st)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// When Close's context ends first, running calls are stopped.
func TestModuleCloseStopsCalls(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "stuck", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: 2, Timeout: time.Minute})
	first, second := runLoop(t, m), runLoop(t, m)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want context.DeadlineExceeded", err)
	}
	for _, errc := range []<-chan error{first, second} {
		select {
		case err := <-errc:
			// The node's doing, not the guest's: ErrPoolClosed, never a trap.
			var te *wasmhost.TrapError
			if !errors.Is(err, wasmhost.ErrPoolClosed) || errors.As(err, &te) {
				t.Fatalf("call stopped by Close = %v, want ErrPoolClosed and no TrapError", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("call not stopped by Close")
		}
	}
	testutil.Eventually(t, 5*time.Second, 2*time.Millisecond, func() error {
		if st := m.Stats(); st.Live != 0 || st.InUse != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}

func TestHostCloseClosesModules(t *testing.T) {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Config{}.WithCompilationCacheDir(testutil.CompileCacheDir(t)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := h.Compile(ctx, "a", nextModule(), wasmhost.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Compile(ctx, "b", helloModule(), wasmhost.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*wasmhost.Module{a, b} {
		if _, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{}); !errors.Is(err, wasmhost.ErrPoolClosed) {
			t.Errorf("%s: call after host Close = %v, want ErrPoolClosed", m.Name(), err)
		}
	}
	if _, err := h.Compile(ctx, "c", nextModule(), wasmhost.Limits{}); !errors.Is(err, wasmhost.ErrHostClosed) {
		t.Errorf("Compile after Close = %v, want ErrHostClosed", err)
	}
	if _, err := h.Validate(ctx, nextModule()); !errors.Is(err, wasmhost.ErrHostClosed) {
		t.Errorf("Validate after Close = %v, want ErrHostClosed", err)
	}
	if err := h.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []wasmhost.Config{
		wasmhost.Config{}.WithDefaultLimits(wasmhost.Limits{Timeout: -1}),
		wasmhost.Config{}.WithDefaultLimits(wasmhost.Limits{MemoryMB: 5000}),
		wasmhost.Config{}.WithDefaultLimits(wasmhost.Limits{MaxWorkers: -2}),
		wasmhost.Config{}.WithGuestLogRate(-1, 10),
		wasmhost.Config{}.WithInitTimeout(-time.Second),
	} {
		if h, err := wasmhost.New(ctx, cfg); !errors.Is(err, wasmhost.ErrInvalidConfig) {
			if h != nil {
				_ = h.Close(ctx)
			}
			t.Errorf("New = %v, want ErrInvalidConfig", err)
		}
	}
	h, _ := newHost(t, wasmhost.Config{}.WithDefaultLimits(wasmhost.Limits{Timeout: 3 * time.Second}))
	if _, err := h.Compile(ctx, "x", nextModule(), wasmhost.Limits{MaxInput: -1}); !errors.Is(err, wasmhost.ErrInvalidConfig) {
		t.Errorf("Compile with bad limits = %v, want ErrInvalidConfig", err)
	}
	m := compile(t, h, "x", nextModule(), wasmhost.Limits{MaxWorkers: 2})
	want := wasmhost.DefaultLimits()
	want.Timeout, want.MaxWorkers = 3*time.Second, 2
	if got := m.Limits(); got != want {
		t.Errorf("limits %+v, want %+v", got, want)
	}
}
