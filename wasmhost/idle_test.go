package wasmhost_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Instances a burst created and no call used since are closed after the
// idle timeout, the coldest first, down to one: the one calls keep using.
// Without it a node kept every burst's worth of instances (a few MiB each)
// of every function for good.
func TestIdleInstancesAreReclaimed(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{}.WithIdleTimeout(50*time.Millisecond))
	m := compile(t, h, "idle", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: 4})
	if err := m.Warm(context.Background(), 3); err != nil {
		t.Fatalf("warm: %v", err)
	}
	if st := m.Stats(); st.Live != 3 {
		t.Fatalf("live after Warm(3) = %d", st.Live)
	}
	// Calls one at a time use the warmest instance, again and again.
	for i := 1; i <= 5; i++ {
		res, err := callMode(context.Background(), m, "ok")
		mustCallsHeader(t, res, err, fmt.Sprint(i))
	}
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if st := m.Stats(); st.Live != 1 || st.Idle != 1 || st.Reclaimed != 2 {
			return fmt.Errorf("stats %+v, want 1 live and idle, 2 reclaimed", st)
		}
		return nil
	})
	created := m.Stats().Created
	// The one kept is the one the calls used, not a cold one.
	res, err := callMode(context.Background(), m, "ok")
	mustCallsHeader(t, res, err, "6")
	if st := m.Stats(); st.Created != created {
		t.Fatalf("created %d instances for a call after the reclaim, want none", st.Created-created)
	}
	// Never below one, however long nothing calls.
	time.Sleep(200 * time.Millisecond)
	if st := m.Stats(); st.Live != 1 || st.Reclaimed != 2 {
		t.Fatalf("stats after a long idle %+v, want the one instance kept", st)
	}
}

// An instance in a call is never reclaimed, however long the call.
func TestIdleTimeoutSparesBusyInstances(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{}.WithIdleTimeout(20*time.Millisecond))
	m := compile(t, h, "busy", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: 2, Timeout: 400 * time.Millisecond})
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := callMode(context.Background(), m, "sleep") // sleeps until the timeout stops it
			done <- err
		}()
	}
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := m.Stats(); st.InUse != 2 {
			return fmt.Errorf("stats %+v, want 2 in use", st)
		}
		return nil
	})
	time.Sleep(150 * time.Millisecond) // several sweeps
	if st := m.Stats(); st.Live != 2 || st.Reclaimed != 0 {
		t.Fatalf("stats while both instances are in calls %+v, want both kept", st)
	}
	for range 2 {
		if err := <-done; err == nil {
			t.Fatal("a sleeping call returned without the timeout's error")
		}
	}
}

// A negative idle timeout keeps every instance.
func TestNegativeIdleTimeoutKeepsInstances(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{}.WithIdleTimeout(-1))
	m := compile(t, h, "kept", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: 4})
	if err := m.Warm(context.Background(), 3); err != nil {
		t.Fatalf("warm: %v", err)
	}
	time.Sleep(150 * time.Millisecond)
	if st := m.Stats(); st.Live != 3 || st.Reclaimed != 0 {
		t.Fatalf("stats %+v, want the 3 instances kept", st)
	}
}
