package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// limiter bounds the phase calls in flight over one messaging config
// (max_inflight) and applies its overflow_policy when all slots are taken.
// A slot is held for one attempt: the wire time of a request, not its
// backoff waits.
//
// It is a count under a mutex rather than a channel of slots so that
// Reload can change its bound in place (set): the calls in flight keep
// counting against it, whatever bound they started under, and the queued
// ones are admitted as soon as a raised bound has room. The uncontended
// acquire and release are one lock and unlock each, and allocate nothing.
type limiter struct {
	mu     sync.Mutex
	max    int // the bound; cur may exceed it after set lowered it
	cur    int // slots held
	policy OverflowPolicy
	// The calls waiting for a slot (overflow_policy queue), oldest first.
	// Invariant, whenever mu is free: no one waits while cur < max, so
	// that the fast path needs no look at the queue to stay FIFO.
	head, tail *slotWaiter
}

// slotWaiter is a queued acquire. granted and the links change under the
// limiter's mu; ready is closed when granted is set.
type slotWaiter struct {
	ready      chan struct{}
	granted    bool
	prev, next *slotWaiter
}

func newLimiter(max int, policy OverflowPolicy) *limiter {
	l := &limiter{}
	l.max, l.policy = limits(max, policy)
	return l
}

// limits applies the defaults of max_inflight and overflow_policy.
func limits(max int, policy OverflowPolicy) (int, OverflowPolicy) {
	if max <= 0 {
		max = DefaultMaxInflight
	}
	if policy == "" {
		policy = DefaultOverflowPolicy
	}
	return max, policy
}

// acquire takes a slot. When none is free: reject returns ErrOverloaded at
// once; shed returns errShed; queue waits for a slot, behind the calls
// queued before it, for at most wait (the call's timeout: a call that
// could not start within its own timeout would have timed out anyway),
// then returns ErrOverloaded. A done ctx returns its error.
func (l *limiter) acquire(ctx context.Context, wait time.Duration) error {
	l.mu.Lock()
	if l.cur < l.max { // then no one is queued (see the invariant)
		l.cur++
		l.mu.Unlock()
		return nil
	}
	switch l.policy {
	case OverflowReject:
		max := l.max
		l.mu.Unlock()
		return fmt.Errorf("%w: max_inflight %d reached", ErrOverloaded, max)
	case OverflowShed:
		l.mu.Unlock()
		return errShed
	}
	w := &slotWaiter{ready: make(chan struct{})}
	l.push(w)
	l.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !w.granted {
		// Still queued: leave. No one behind it can use a slot it could
		// not (the invariant), so there is no one to wake.
		l.remove(w)
	} else if ctx.Err() == nil {
		// Granted as the wait ran out: the slot is the call's.
		return nil
	} else {
		// Granted as ctx ended: the call will not run, give the slot on.
		l.cur--
		l.admit()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: no slot of max_inflight %d within %v", ErrOverloaded, l.max, wait)
}

// release frees a slot taken by acquire, handing it to the oldest queued
// call when the bound has room.
func (l *limiter) release() {
	l.mu.Lock()
	l.cur--
	if l.head != nil {
		l.admit()
	}
	l.mu.Unlock()
}

// set changes the bound and the policy in place, for a Reload: the calls
// in flight keep their slots and count against the new bound. Lowered,
// it admits no call until fewer than max are in flight (none is cut
// short); raised, it admits the queued calls at once, oldest first, up to
// max. Calls already queued stay queued (until a slot or their timeout)
// when the policy changes from queue.
func (l *limiter) set(max int, policy OverflowPolicy) {
	max, policy = limits(max, policy)
	l.mu.Lock()
	l.max, l.policy = max, policy
	l.admit()
	l.mu.Unlock()
}

// admit grants slots to the queued calls, oldest first, while the bound
// has room. Called with mu held.
func (l *limiter) admit() {
	for l.head != nil && l.cur < l.max {
		w := l.head
		l.remove(w)
		l.cur++
		w.granted = true
		close(w.ready)
	}
}

func (l *limiter) push(w *slotWaiter) {
	w.prev = l.tail
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
}

func (l *limiter) remove(w *slotWaiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
}
