package platform_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// TestDrainUnderLoadLosesNothing drains a node while clients keep sending:
// every request is either answered or refused (503 before admission, or no
// responders once the node is gone); none is left to time out.
func TestDrainUnderLoadLosesNothing(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Config: map[string]string{"sleep": "20ms"}, Limits: registry.Limits{MaxWorkers: 4}}, counterDir)
	n := e.startNode("n1", withConfig(func(c *platform.Config) { c.QueueLength = 64 }))

	var ok, refused, gone, lost, other atomic.Int64
	var firstOther atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second)
				switch {
				case err == nil && resp.Action == protocol.ActionEnd:
					ok.Add(1)
				case isServiceError(err, 503):
					refused.Add(1)
				case errors.Is(err, nats.ErrNoResponders):
					gone.Add(1)
					return // the node is gone
				case isTimeout(err):
					lost.Add(1)
				default:
					other.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Errorf("%v %+v", err, resp))
				}
			}
		}()
	}
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		if ok.Load() < 50 {
			return fmt.Errorf("%d answered", ok.Load())
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	<-n.Done()
	// The senders keep going until they find the node gone.
	wg.Wait()
	t.Logf("answered %d, refused %d, no responders %d", ok.Load(), refused.Load(), gone.Load())
	if lost.Load() > 0 || other.Load() > 0 {
		t.Fatalf("%d requests timed out unanswered and %d failed otherwise (first: %v)", lost.Load(), other.Load(), firstOther.Load())
	}
	if h := n.Health(); h.Status != platform.HealthUnavailable || h.State != "stopped" {
		t.Errorf("health after drain = %+v", h)
	}
}

// TestDrainTimeoutStopsCalls: a drain whose context ends stops the calls
// still running and still answers their requests.
func TestDrainTimeoutStopsCalls(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{TimeoutMS: 60_000, MaxWorkers: 2}}, counterDir)
	n := e.startNode("n1")

	errs := make(chan error, 2)
	for range 2 {
		go func() {
			resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, "spin=30s"), 20*time.Second)
			if err == nil {
				err = fmt.Errorf("answered %v %q", resp.Action, resp.Error)
			}
			errs <- err
		}()
	}
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if h := n.Health(); len(h.Functions) == 0 || h.Functions[0].Inflight != 2 {
			return fmt.Errorf("health %+v", h.Functions)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("drain past its deadline: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("drain took %v", d)
	}
	for range 2 {
		if err := <-errs; !isServiceError(err, 503) {
			t.Errorf("a call stopped by the drain: %v, want a 503 micro error", err)
		}
	}
}
