package gateway

import (
	"context"
	"fmt"
	"time"
)

// limiter bounds the phase calls in flight over one messaging config
// (max_inflight) and applies its overflow_policy when all slots are taken.
// A slot is held for one attempt: the wire time of a request, not its
// backoff waits.
type limiter struct {
	slots  chan struct{}
	policy OverflowPolicy
}

func newLimiter(max int, policy OverflowPolicy) *limiter {
	if max <= 0 {
		max = DefaultMaxInflight
	}
	if policy == "" {
		policy = DefaultOverflowPolicy
	}
	return &limiter{slots: make(chan struct{}, max), policy: policy}
}

// acquire takes a slot. When none is free: reject returns ErrOverloaded at
// once; shed returns errShed; queue waits for a slot, for at most wait (the
// call's timeout: a call that could not start within its own timeout would
// have timed out anyway), then returns ErrOverloaded. A done ctx returns its
// error.
func (l *limiter) acquire(ctx context.Context, wait time.Duration) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	switch l.policy {
	case OverflowReject:
		return fmt.Errorf("%w: max_inflight %d reached", ErrOverloaded, cap(l.slots))
	case OverflowShed:
		return errShed
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%w: no slot of max_inflight %d within %v", ErrOverloaded, cap(l.slots), wait)
	}
}

func (l *limiter) release() { <-l.slots }

// reconfigured returns the limiter for max and policy after a Reload: l
// itself when neither changed; when only the policy changed, one sharing
// l's slots, so the calls in flight still count; when max changed, a new
// one with every slot free. The calls in flight hold their slots in l
// (they, and the retries of their requests, call through the targets they
// started with) and release them there: until they finish, at most their
// timeout times their attempts, up to the old bound plus the new one may
// be in flight over the config. Carrying the count into a channel of
// another size would need a hand-off on every release, on the hot path,
// for what a reload does once.
func (l *limiter) reconfigured(max int, policy OverflowPolicy) *limiter {
	n := newLimiter(max, policy)
	if cap(n.slots) != cap(l.slots) {
		return n
	}
	if n.policy == l.policy {
		return l
	}
	n.slots = l.slots
	return n
}
