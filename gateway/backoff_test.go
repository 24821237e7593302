package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffExponentialCapped(t *testing.T) {
	b := Backoff{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: JitterNone}
	rng := NewRand(1)
	for n, want := range map[int]time.Duration{1: 50, 2: 100, 3: 200, 4: 250, 5: 250, 100: 250, 1 << 30: 250} {
		if got := b.Delay(n, rng); got != want*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want*time.Millisecond)
		}
	}
	if got := (Backoff{Jitter: JitterFull}).Delay(3, rng); got != 0 {
		t.Errorf("zero backoff = %v", got)
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	rng := NewRand(42)
	d := 200 * time.Millisecond
	full := Backoff{Initial: d, Max: d, Jitter: JitterFull}
	equal := Backoff{Initial: d, Max: d, Jitter: JitterEqual}
	var lowFull, highFull bool
	for range 1000 {
		f := full.Delay(1, rng)
		if f < 0 || f > d {
			t.Fatalf("full jitter %v outside [0, %v]", f, d)
		}
		lowFull = lowFull || f < d/4
		highFull = highFull || f > 3*d/4
		e := equal.Delay(1, rng)
		if e < d/2 || e > d {
			t.Fatalf("equal jitter %v outside [%v, %v]", e, d/2, d)
		}
	}
	if !lowFull || !highFull {
		t.Fatal("full jitter does not spread over its range")
	}
}

func TestRandSeeded(t *testing.T) {
	a, b, c := NewRand(7), NewRand(7), NewRand(8)
	same, differ := true, false
	for range 20 {
		x, y, z := a.duration(time.Hour), b.duration(time.Hour), c.duration(time.Hour)
		same = same && x == y
		differ = differ || x != z
	}
	if !same || !differ {
		t.Fatalf("same seed same sequence: %v; other seed differs: %v", same, differ)
	}
}

func TestLimiterPolicies(t *testing.T) {
	ctx := context.Background()
	for _, p := range []OverflowPolicy{OverflowReject, OverflowShed, OverflowQueue} {
		l := newLimiter(1, p)
		if err := l.acquire(ctx, time.Second); err != nil {
			t.Fatalf("%s: first acquire: %v", p, err)
		}
		start := time.Now()
		err := l.acquire(ctx, 20*time.Millisecond)
		switch p {
		case OverflowReject:
			if !errors.Is(err, ErrOverloaded) || time.Since(start) > 10*time.Millisecond {
				t.Fatalf("reject: %v after %v", err, time.Since(start))
			}
		case OverflowShed:
			if !errors.Is(err, errShed) {
				t.Fatalf("shed: %v", err)
			}
		case OverflowQueue:
			if !errors.Is(err, ErrOverloaded) || time.Since(start) < 20*time.Millisecond {
				t.Fatalf("queue: %v after %v, want ErrOverloaded after the wait", err, time.Since(start))
			}
			done := make(chan error)
			go func() { done <- l.acquire(ctx, time.Minute) }()
			l.release()
			if err := <-done; err != nil {
				t.Fatalf("queue: waiting acquire after release: %v", err)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := l.acquire(cctx, time.Minute); !errors.Is(err, context.Canceled) {
				t.Fatalf("queue: canceled acquire: %v", err)
			}
		}
	}
}
