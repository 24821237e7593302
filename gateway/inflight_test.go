package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// state reads the limiter's bound, slots held and queued calls.
func (l *limiter) state() (max, cur, queued int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := l.head; w != nil; w = w.next {
		queued++
	}
	return l.max, l.cur, queued
}

// waitQueued waits until n calls are queued on l.
func waitQueued(t *testing.T, l *limiter, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, q := l.state()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantState(t *testing.T, l *limiter, max, cur, queued int) {
	t.Helper()
	if m, c, q := l.state(); m != max || c != cur || q != queued {
		t.Fatalf("limiter: max %d, held %d, queued %d; want %d, %d, %d", m, c, q, max, cur, queued)
	}
}

// queuedAcquire starts an acquire that must queue on l (it waits until it
// has), and returns its outcome.
func queuedAcquire(t *testing.T, l *limiter, ctx context.Context, wait time.Duration) <-chan error {
	t.Helper()
	_, _, q := l.state()
	out := make(chan error, 1)
	go func() { out <- l.acquire(ctx, wait) }()
	waitQueued(t, l, q+1)
	return out
}

func wantPending(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("a queued call returned (%v) with no slot for it", err)
	case <-time.After(20 * time.Millisecond):
	}
}

func wantAcquired(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("queued call: %v, want a slot", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a queued call got no slot")
	}
}

// The uncontended path, taken by nearly every phase call, allocates
// nothing.
func TestInflightUncontendedAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	for _, p := range []OverflowPolicy{OverflowQueue, OverflowReject, OverflowShed} {
		l := newLimiter(4, p)
		allocs := testing.AllocsPerRun(1000, func() {
			if err := l.acquire(ctx, time.Second); err != nil {
				t.Fatal(err)
			}
			l.release()
		})
		if allocs != 0 {
			t.Errorf("%s: uncontended acquire and release: %v allocations, want 0", p, allocs)
		}
		// shed's verdict on a full limiter is a fixed error: none either.
		if p == OverflowShed {
			for range 4 {
				_ = l.acquire(ctx, time.Second)
			}
			allocs := testing.AllocsPerRun(100, func() {
				if err := l.acquire(ctx, time.Second); err != errShed {
					t.Fatalf("full shed limiter: %v, want errShed", err)
				}
			})
			if allocs != 0 {
				t.Errorf("shed on a full limiter: %v allocations, want 0", allocs)
			}
		}
	}
}

func TestInflightRejectAndShed(t *testing.T) {
	ctx := context.Background()
	l := newLimiter(2, OverflowReject)
	for range 2 {
		if err := l.acquire(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	err := l.acquire(ctx, time.Second)
	if !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "max_inflight 2 reached") {
		t.Fatalf("reject when full: %v, want ErrOverloaded naming max_inflight 2", err)
	}
	l.set(2, OverflowShed)
	if err := l.acquire(ctx, time.Second); err != errShed {
		t.Fatalf("shed when full: %v, want errShed", err)
	}
	wantState(t, l, 2, 2, 0)
	l.release()
	if err := l.acquire(ctx, time.Second); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	// The defaults of an unset bound and policy.
	l = newLimiter(0, "")
	if l.max != DefaultMaxInflight || l.policy != DefaultOverflowPolicy {
		t.Fatalf("newLimiter(0, \"\"): max %d, policy %q", l.max, l.policy)
	}
}

// Queued calls get slots in the order they queued.
func TestInflightQueueIsFIFO(t *testing.T) {
	ctx := context.Background()
	l := newLimiter(1, OverflowQueue)
	if err := l.acquire(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	const n = 8
	order := make(chan int, n)
	for i := range n {
		go func() {
			if err := l.acquire(ctx, 10*time.Second); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				order <- -1
				return
			}
			order <- i
		}()
		waitQueued(t, l, i+1)
	}
	for want := range n {
		l.release() // the slot passes to the oldest waiter
		if got := <-order; got != want {
			t.Fatalf("waiter %d got the slot, want %d", got, want)
		}
	}
	l.release()
	wantState(t, l, 1, 0, 0)
}

// A queued call that gets no slot within its wait, or whose ctx ends,
// leaves the queue and takes no slot.
func TestInflightQueueWaitAndCancel(t *testing.T) {
	l := newLimiter(1, OverflowQueue)
	if err := l.acquire(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	err := l.acquire(context.Background(), 20*time.Millisecond)
	if !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "no slot of max_inflight 1 within 20ms") {
		t.Fatalf("queued past its wait: %v, want ErrOverloaded", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := queuedAcquire(t, l, ctx, 10*time.Second)
	behind := queuedAcquire(t, l, context.Background(), 10*time.Second)
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("queued call whose ctx ended: %v, want context.Canceled", err)
	}
	wantState(t, l, 1, 1, 1)
	l.release()
	wantAcquired(t, behind)
	l.release()
	wantState(t, l, 1, 0, 0)
}

// set changes the bound in place, counting the calls in flight: lowered,
// it admits none until fewer than it are in flight; raised, it admits the
// queued calls at once, oldest first, up to it.
func TestInflightSetCountsCallsInFlight(t *testing.T) {
	ctx := context.Background()
	l := newLimiter(3, OverflowQueue)
	for range 3 {
		if err := l.acquire(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	l.set(1, OverflowQueue)
	wantState(t, l, 1, 3, 0) // none cut short
	first := queuedAcquire(t, l, ctx, 10*time.Second)
	second := queuedAcquire(t, l, ctx, 10*time.Second)
	third := queuedAcquire(t, l, ctx, 10*time.Second)
	l.release()
	l.release()
	wantPending(t, first) // one still in flight, the bound is 1
	wantState(t, l, 1, 1, 3)

	// Several reloads in a row neither forget the calls in flight nor
	// start an empty bound.
	l.set(2, OverflowQueue)
	wantAcquired(t, first)
	wantState(t, l, 2, 2, 2)
	l.set(1, OverflowQueue)
	l.set(2, OverflowQueue)
	wantPending(t, second)
	wantState(t, l, 2, 2, 2)

	l.set(4, OverflowQueue) // room for both: the queue empties at once
	wantAcquired(t, second)
	wantAcquired(t, third)
	wantState(t, l, 4, 4, 0)

	// A change of policy alone keeps the count.
	l.set(4, OverflowReject)
	if err := l.acquire(ctx, time.Second); !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "max_inflight 4") {
		t.Fatalf("full after a change to reject: %v", err)
	}
	l.set(2, OverflowReject)
	l.release()
	l.release()
	if err := l.acquire(ctx, time.Second); !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "max_inflight 2") {
		t.Fatalf("lowered to 2 with 2 in flight: %v, want ErrOverloaded naming max_inflight 2", err)
	}
	l.release()
	if err := l.acquire(ctx, time.Second); err != nil {
		t.Fatalf("lowered to 2 with 1 in flight: %v", err)
	}
	l.release()
	l.release()
	wantState(t, l, 2, 0, 0)
}

// A queued call granted a slot just as its wait ends, or its ctx, either
// keeps the slot (acquire returns nil) or gives it back: the slot is never
// lost. The lock is held while the wait ends, so that the grant and the
// end meet.
func TestInflightGrantMeetsTheEndOfTheWait(t *testing.T) {
	for _, end := range []string{"timer", "ctx"} {
		t.Run(end, func(t *testing.T) {
			l := newLimiter(1, OverflowQueue)
			if err := l.acquire(context.Background(), time.Second); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wait := 10 * time.Second
			if end == "timer" {
				wait = 30 * time.Millisecond
			}
			got := queuedAcquire(t, l, ctx, wait)
			l.mu.Lock()
			if end == "ctx" {
				cancel()
			}
			time.Sleep(60 * time.Millisecond) // the waiter wakes, and waits for mu
			l.cur--                           // release, with mu held
			l.admit()
			l.mu.Unlock()
			err := <-got
			_, cur, queued := l.state()
			switch {
			case queued != 0:
				t.Fatalf("%d calls left queued", queued)
			case err == nil && cur != 1, err != nil && cur != 0:
				t.Fatalf("acquire returned %v with %d slots held: a slot was lost or doubled", err, cur)
			case end == "ctx" && err == nil, end == "timer" && err != nil:
				// Only when the waiter woke after the grant; rare.
				t.Logf("acquire returned %v: the grant came first", err)
			}
		})
	}
}

// Many goroutines acquire and release with short waits and cancellations
// while the bound changes: no slot is lost or made up. Run it with -race.
func TestInflightStressKeepsTheCount(t *testing.T) {
	for _, resize := range []bool{false, true} {
		t.Run(fmt.Sprintf("resize=%v", resize), func(t *testing.T) {
			const bound, workers, rounds = 4, 32, 200
			l := newLimiter(bound, OverflowQueue)
			var held, maxHeld atomic.Int64
			var wg sync.WaitGroup
			stop := make(chan struct{})
			if resize {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(1, 2))
					for {
						select {
						case <-stop:
							l.set(bound, OverflowQueue)
							return
						default:
						}
						l.set(1+r.IntN(2*bound), OverflowQueue)
						time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
					}
				}()
			}
			var work sync.WaitGroup
			for i := range workers {
				work.Add(1)
				go func() {
					defer work.Done()
					r := rand.New(rand.NewPCG(uint64(i), 7))
					for range rounds {
						ctx, cancel := context.WithCancel(context.Background())
						if r.IntN(4) == 0 {
							time.AfterFunc(time.Duration(r.IntN(100))*time.Microsecond, cancel)
						}
						err := l.acquire(ctx, time.Duration(r.IntN(200))*time.Microsecond)
						cancel()
						if err != nil {
							if !errors.Is(err, ErrOverloaded) && !errors.Is(err, context.Canceled) {
								t.Errorf("acquire: %v", err)
							}
							continue
						}
						h := held.Add(1)
						for m := maxHeld.Load(); h > m && !maxHeld.CompareAndSwap(m, h); m = maxHeld.Load() {
						}
						time.Sleep(time.Duration(r.IntN(20)) * time.Microsecond)
						held.Add(-1)
						l.release()
					}
				}()
			}
			work.Wait()
			close(stop)
			wg.Wait()
			wantState(t, l, bound, 0, 0)
			limit := int64(bound)
			if resize {
				limit = 2 * bound
			}
			if m := maxHeld.Load(); m > limit {
				t.Fatalf("%d calls held at once, bound %d", m, limit)
			}
			// Every slot is still there.
			l.set(bound, OverflowReject)
			for i := range bound {
				if err := l.acquire(context.Background(), 0); err != nil {
					t.Fatalf("slot %d after the storm: %v", i, err)
				}
			}
		})
	}
}

// BenchmarkLimiterAcquireRelease is the limiter's cost on every phase
// call: one acquire and release with a slot free, from one goroutine and
// from GOMAXPROCS at once (contending for the limiter, not its bound).
//
//	go test ./gateway -run XXX -bench Limiter -benchtime 300ms
func BenchmarkLimiterAcquireRelease(b *testing.B) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		l := newLimiter(DefaultMaxInflight, OverflowQueue)
		b.ReportAllocs()
		for b.Loop() {
			if err := l.acquire(ctx, DefaultRequestTimeout); err != nil {
				b.Fatal(err)
			}
			l.release()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l := newLimiter(DefaultMaxInflight, OverflowQueue)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.acquire(ctx, DefaultRequestTimeout); err != nil {
					b.Error(err)
					return
				}
				l.release()
			}
		})
	})
}
