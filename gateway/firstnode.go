package gateway

import (
	"context"
	"sync/atomic"
	"time"
)

// A function deployed moments ago has no node serving it yet: every node
// fetches the module and compiles it first, which takes a second or more
// (a large module, a node with a cold compilation cache, a node still
// starting). Its routes are installed at once, so without a wait its first
// requests would get 503 no responders although a node is about to answer.
// Like Knative's activator holding the requests of a revision that is
// starting, the gateway holds them instead: within newFunctionGrace of the
// deploy, a call that finds no responder is sent again, with backoff, until
// a node answers or defaultFirstNodeWait (the call's timeout, if longer)
// has passed. Later, NoResponder means that nobody serves the function, and
// it is answered 503 at once.
//
// Every waiting call polls (a request that finds no responder costs the
// NATS server a few microseconds), and a wait holds the client's request
// for seconds: at most defaultFirstNodeMaxWaiting calls of a route wait
// at once, so that a flood of requests at a function no node ever loads
// costs at most ~4 polls/s per waiting call and is answered 503 beyond
// them. The count outlives the route table, which every registry change
// installs anew (Gateway.firstNodeWaiting): calls still waiting on the
// table before count too.
const (
	newFunctionGrace           = time.Minute
	defaultFirstNodeWait       = 10 * time.Second
	nodeWaitInitial            = 20 * time.Millisecond
	nodeWaitMax                = 250 * time.Millisecond
	defaultFirstNodeMaxWaiting = 1024
)

// isNew reports whether t is the route of a function deployed less than
// newFunctionGrace before now, whose nodes may still be loading it.
func (t *target) isNew(now time.Time) bool {
	return !t.deployed.IsZero() && now.Sub(t.deployed) < newFunctionGrace
}

// firstNodeWait is one call's wait for the first node of a new function.
// The zero value has not started waiting.
type firstNodeWait struct {
	counted *atomic.Int32 // the target's firstNodeWaiting while counted in it
	until   time.Time     // zero until the first NoResponder
	delay   time.Duration
	// full is set when the call did not wait because maxWaiting calls of
	// its route already did: its NoResponder says so in the logs.
	full bool
}

// wait reports whether the call should be sent again after a NoResponder,
// having slept before it: only for a target deployed less than
// newFunctionGrace ago while fewer than maxWaiting of its calls wait, and
// only until bound (or the call's timeout, if longer) has passed since the
// first NoResponder. It returns false at once otherwise, and false when ctx
// ends while sleeping (ctx.Err() says so).
func (w *firstNodeWait) wait(ctx context.Context, t *target, timeout, bound time.Duration, maxWaiting int32) bool {
	now := time.Now()
	if w.until.IsZero() {
		if !t.isNew(now) || t.firstNodeWaiting == nil {
			return false
		}
		if t.firstNodeWaiting.Add(1) > maxWaiting {
			t.firstNodeWaiting.Add(-1)
			w.full = true
			return false
		}
		w.counted = t.firstNodeWaiting
		w.until, w.delay = now.Add(max(timeout, bound)), nodeWaitInitial
	}
	left := w.until.Sub(now)
	if left <= 0 {
		return false
	}
	d := min(w.delay, left)
	w.delay = min(2*w.delay, nodeWaitMax)
	return sleep(ctx.Done(), d)
}

// waiting reports whether the call has waited for a first node.
func (w *firstNodeWait) waiting() bool { return !w.until.IsZero() }

// done ends the call's wait, if it waited.
func (w *firstNodeWait) done() {
	if w.counted != nil {
		w.counted.Add(-1)
		w.counted = nil
	}
}
