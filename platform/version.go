package platform

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// version is one loaded deployment of a function: its compiled module and
// the bounded worker pool that runs it.
//
// Requests are admitted by dispatch on the subscription goroutine into
// queue (capacity Config.QueueLength); workers goroutines (max_workers,
// started with the version) take them and call the module, which keeps at
// most as many instances. A full queue is an immediate 503, so a flood never
// piles up goroutines or memory.
//
// Lifetime: every admitted request holds a reference from admission to its
// reply. Retiring the version (hot reload, delete, drain) refuses new
// references; when the last one is released the queue is closed, the
// workers exit and the module is closed. So in-flight and queued calls of
// an old version always finish on that version.
type version struct {
	fn       *function
	rec      registry.Record
	mod      *wasmhost.Module
	phases   protocol.PhaseSet
	config   []protocol.KV // the record's config, sorted by key
	timeout  time.Duration
	workers  int
	queue    chan *job
	loadedAt time.Time

	// maxBody is the record's max_body_bytes (0: none deployed) and
	// maxMessage the request message size it admits (max_body_bytes +
	// protocol.RequestOverhead; 0: the node's PayloadLimits apply).
	maxBody, maxMessage int

	refs     atomic.Int64 // admitted requests; retiredBit once retired
	shutOnce sync.Once
	closed   chan struct{} // closed once the module is closed
}

// retiredBit marks a version that admits nothing more.
const retiredBit = 1 << 62

func newVersion(f *function, rec registry.Record, mod *wasmhost.Module, timeout time.Duration, workers, queue int) *version {
	v := &version{
		fn:       f,
		rec:      rec,
		mod:      mod,
		phases:   mod.Phases(),
		timeout:  timeout,
		workers:  workers,
		queue:    make(chan *job, queue),
		loadedAt: time.Now(),
		closed:   make(chan struct{}),
	}
	if b := rec.Limits.MaxBodyBytes; b > 0 {
		v.maxBody = int(b)
		v.maxMessage = int(b) + protocol.RequestOverhead
	}
	for _, k := range slices.Sorted(maps.Keys(rec.Config)) {
		v.config = append(v.config, protocol.KV{Key: k, Value: rec.Config[k]})
	}
	for range workers {
		go v.work()
	}
	return v
}

// acquire takes a reference unless the version is retired.
func (v *version) acquire() bool {
	for {
		n := v.refs.Load()
		if n&retiredBit != 0 {
			return false
		}
		if v.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one of a retired version shuts it down.
func (v *version) release() {
	if v.refs.Add(-1) == retiredBit {
		v.shutdown()
	}
}

// retire stops admission. The version shuts down once its admitted
// requests are answered (at once if there are none).
func (v *version) retire() {
	for {
		n := v.refs.Load()
		if n&retiredBit != 0 {
			return
		}
		if v.refs.CompareAndSwap(n, n|retiredBit) {
			if n == 0 {
				v.shutdown()
			}
			return
		}
	}
}

// inflight reports the admitted requests not yet answered.
func (v *version) inflight() int64 { return v.refs.Load() &^ retiredBit }

// shutdown closes the queue (no sender can remain: senders hold references)
// so the workers exit, then closes the module.
func (v *version) shutdown() {
	v.shutOnce.Do(func() {
		close(v.queue)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := v.mod.Close(ctx); err != nil {
				v.fn.log.Warn("platform: close module", "version", v.rec.Version, "err", err)
			}
			close(v.closed)
		}()
	})
}

// forceClose closes the module at once while calls may still run (a drain
// that ran out of time): they fail with wasmhost.ErrPoolClosed, their
// requests are answered 503 so callers retry elsewhere, and the version
// shuts down when the last reference goes.
func (v *version) forceClose() {
	now, stop := context.WithCancel(context.Background())
	stop() // Module.Close waits for running calls only until its context ends
	if err := v.mod.Close(now); err != nil && !errors.Is(err, context.Canceled) {
		v.fn.log.Warn("platform: force-close module", "version", v.rec.Version, "err", err)
	}
}

// work runs queued requests until the queue is closed.
func (v *version) work() {
	for j := range v.queue {
		v.fn.run(v, j)
	}
}

// poolStats reports the module's idle and busy instances.
func (v *version) poolStats() (idle, busy int) {
	st := v.mod.Stats()
	return st.Idle, st.InUse
}
