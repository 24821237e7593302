package gateway

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff is an exponential backoff: the wait before retry n (1-based) is
// Initial·2^(n-1), capped at Max, then jittered.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Jitter  Jitter
}

// Delay returns the wait before retry n (n >= 1), drawing jitter from rng.
func (b Backoff) Delay(n int, rng *Rand) time.Duration {
	d := b.Initial
	if d <= 0 {
		return 0
	}
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	switch b.Jitter {
	case JitterNone:
		return d
	case JitterEqual:
		half := d / 2
		return half + rng.duration(d-half)
	default: // full
		return rng.duration(d)
	}
}

// Rand is a goroutine-safe source of jitter. Each Gateway owns one, seeded
// at New (WithSeed makes it reproducible), so no global random state is
// shared or contended across gateways.
type Rand struct {
	mu sync.Mutex
	r  *rand.Rand
}

// NewRand returns a Rand seeded with seed.
func NewRand(seed uint64) *Rand {
	return &Rand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// duration returns a uniform duration in [0, max].
func (r *Rand) duration(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	r.mu.Lock()
	n := r.r.Int64N(int64(max) + 1)
	r.mu.Unlock()
	return time.Duration(n)
}

// sleep waits d or until ctx is done, whichever comes first.
func sleep(done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
