package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

// policy reads the limiter's overflow policy.
func (l *limiter) policyNow() OverflowPolicy {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.policy
}

// A reload that is refused, whatever it would have set, leaves the
// limiter's bound and policy as they were; two reloads racing each other
// and the calls in flight leave the bound of the last one, with every slot
// accounted for.
func TestReloadLimiterRefusedAndRaced(t *testing.T) {
	s := testutil.RunNATS(t)
	nc := testutil.Connect(t, s)
	parse := func(max int, policy OverflowPolicy) Config {
		t.Helper()
		cfg, err := ParseConfig("t.yaml", []byte(fmt.Sprintf(`
messaging:
  - {name: nats, subject_prefix: nylon.dev, max_inflight: %d, overflow_policy: %s}
routes:
  - {path: /x, upstream: "http://127.0.0.1:1", plugins: [p]}
plugins:
  - {name: p, messaging: nats, per_phase: {request_filter: {}}}
`, max, policy)))
		if err != nil {
			t.Fatal(err)
		}
		return *cfg
	}
	g, err := New(parse(4, OverflowQueue), nc, WithRegisterer(prometheus.NewRegistry()),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	l := g.conf.Load().msgs[0].limiter
	ctx := context.Background()

	// Two slots held across the refused reloads.
	for range 2 {
		if err := l.acquire(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	bad := parse(1, OverflowReject)
	bad.Routes[0].Plugins = []string{"ghost"} // a plugin that does not exist
	if err := g.Reload(ctx, bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("reload naming a missing plugin: %v, want ErrInvalidConfig", err)
	}
	restart := parse(1, OverflowReject)
	restart.Messaging[0].SubjectPrefix = "nylon.other"
	if err := g.Reload(ctx, restart); !errors.Is(err, ErrRestartRequired) {
		t.Fatalf("reload changing the prefix: %v, want ErrRestartRequired", err)
	}
	if max, cur, q := l.state(); max != 4 || cur != 2 || q != 0 || l.policyNow() != OverflowQueue {
		t.Fatalf("after refused reloads: max %d, held %d, queued %d, policy %s; want 4, 2, 0, queue", max, cur, q, l.policyNow())
	}
	if g.conf.Load().msgs[0].limiter != l {
		t.Fatal("a refused reload replaced the limiter")
	}
	l.release()
	l.release()

	// Reloads racing each other and calls: the limiter stays the same
	// one, ends with the last reload's bound, and no slot is lost.
	stop := make(chan struct{})
	var calls sync.WaitGroup
	var held atomic.Int64
	for i := range 8 {
		calls.Add(1)
		go func() {
			defer calls.Done()
			r := rand.New(rand.NewPCG(uint64(i), 3))
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := l.acquire(ctx, time.Duration(r.IntN(300))*time.Microsecond)
				if err == nil {
					held.Add(1)
					time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
					held.Add(-1)
					l.release()
				} else if !errors.Is(err, ErrOverloaded) && !errors.Is(err, errShed) {
					t.Errorf("acquire: %v", err)
					return
				}
			}
		}()
	}
	var reloads sync.WaitGroup
	policies := []OverflowPolicy{OverflowQueue, OverflowReject, OverflowShed}
	for i := range 2 {
		reloads.Add(1)
		go func() {
			defer reloads.Done()
			r := rand.New(rand.NewPCG(uint64(i), 9))
			for range 50 {
				if err := g.Reload(ctx, parse(1+r.IntN(6), policies[r.IntN(3)])); err != nil {
					t.Errorf("reload: %v", err)
					return
				}
			}
		}()
	}
	reloads.Wait()
	if err := g.Reload(ctx, parse(3, OverflowReject)); err != nil {
		t.Fatal(err)
	}
	close(stop)
	calls.Wait()
	if g.conf.Load().msgs[0].limiter != l {
		t.Fatal("a reload replaced the limiter")
	}
	if max, cur, q := l.state(); max != 3 || cur != 0 || q != 0 || l.policyNow() != OverflowReject {
		t.Fatalf("after the race: max %d, held %d, queued %d, policy %s; want 3, 0, 0, reject", max, cur, q, l.policyNow())
	}
	for i := range 3 {
		if err := l.acquire(ctx, 0); err != nil {
			t.Fatalf("slot %d after the race: %v", i, err)
		}
	}
	if err := l.acquire(ctx, 0); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("a fourth slot of 3: %v, want ErrOverloaded", err)
	}
}

// Calls queued under queue when the policy changes to reject or shed stay
// queued and are admitted, oldest first, as slots free: none is stranded
// (the fast path of reject and shed must not jump the queue either).
func TestInflightQueuedCallsOutliveAPolicyChange(t *testing.T) {
	for _, p := range []OverflowPolicy{OverflowReject, OverflowShed} {
		t.Run(string(p), func(t *testing.T) {
			ctx := context.Background()
			l := newLimiter(1, OverflowQueue)
			if err := l.acquire(ctx, time.Second); err != nil {
				t.Fatal(err)
			}
			first := queuedAcquire(t, l, ctx, 10*time.Second)
			second := queuedAcquire(t, l, ctx, 10*time.Second)
			l.set(1, p)
			// A new call is turned away by the new policy, not queued,
			// and takes no slot from the queued ones.
			if err := l.acquire(ctx, time.Second); err == nil {
				t.Fatal("a new call got a slot ahead of the queued ones")
			}
			wantState(t, l, 1, 1, 2)
			l.release()
			wantAcquired(t, first)
			wantPending(t, second)
			l.release()
			wantAcquired(t, second)
			l.release()
			wantState(t, l, 1, 0, 0)
		})
	}
}
