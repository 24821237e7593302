package wasmhost

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// pool holds a module's instances: at most max exist, each used by one
// caller at a time. A token in tokens stands for an instance checked out or
// being created, so a caller blocks on the channel until one is free; Go
// channels queue blocked senders in order, so waiters are served first come,
// first served.
type pool struct {
	max    int
	tokens chan struct{}
	done   chan struct{} // closed when the pool closes: wakes waiters

	mu     sync.Mutex
	closed bool
	idle   []*instance // a stack: the most recently used instance is the warmest
	live   map[*instance]struct{}
	// lowIdle is the fewest idle instances since the last reclaim: calls
	// take from the top of the stack, so the lowIdle at its bottom have
	// not been used since.
	lowIdle int

	waiting atomic.Int64
}

func newPool(max int) *pool {
	return &pool{
		max:    max,
		tokens: make(chan struct{}, max),
		done:   make(chan struct{}),
		live:   make(map[*instance]struct{}, max),
	}
}

// acquire takes a token, waiting until one is free, ctx is done
// (ErrPoolExhausted wrapping ctx's error) or the pool closes.
func (p *pool) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		// Checked first: a call under a dead context would only make wazero
		// close the instance it was given.
		return context.Cause(ctx)
	}
	select {
	case p.tokens <- struct{}{}:
		return nil
	default:
	}
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	select {
	case p.tokens <- struct{}{}:
		return nil
	case <-p.done:
		return ErrPoolClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: all %d instances busy: %w", ErrPoolExhausted, p.max, context.Cause(ctx))
	}
}

func (p *pool) release() { <-p.tokens }

// isClosed reports whether close has begun.
func (p *pool) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// take pops an idle instance under a token already held. ok is false when
// there is none (the caller creates one); err is ErrPoolClosed after close.
func (p *pool) take() (inst *instance, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, ErrPoolClosed
	}
	if n := len(p.idle); n > 0 {
		inst = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.lowIdle = min(p.lowIdle, n-1)
		return inst, true, nil
	}
	return nil, false, nil
}

// add registers a new instance created under a token. It fails with
// ErrPoolClosed if the pool closed meanwhile; the caller then closes inst.
func (p *pool) add(inst *instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrPoolClosed
	}
	p.live[inst] = struct{}{}
	return nil
}

// put returns inst and its token. An unhealthy instance, or any instance
// once the pool is closed, is removed and reported as discard = true for the
// caller to close.
func (p *pool) put(inst *instance, healthy bool) (discard bool) {
	p.mu.Lock()
	if healthy && !p.closed {
		p.idle = append(p.idle, inst)
	} else {
		delete(p.live, inst)
		discard = true
	}
	p.mu.Unlock()
	p.release()
	return discard
}

// reclaim removes the idle instances no call has used since the previous
// reclaim, the coldest first, keeping at least keep instances in
// existence, and returns them for the caller to close.
func (p *pool) reclaim(keep int) []*instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	var out []*instance
	if n := min(p.lowIdle, len(p.live)-keep); n > 0 {
		out = append(out, p.idle[:n]...)
		rest := copy(p.idle, p.idle[n:])
		clear(p.idle[rest:])
		p.idle = p.idle[:rest]
		for _, inst := range out {
			delete(p.live, inst)
		}
	}
	p.lowIdle = len(p.idle)
	return out
}

// close stops handing out instances, waits until ctx is done for the checked
// out ones to come back, then stops the calls still running and waits for
// those: an instance is never closed under a running call, whose machine
// code and memory wazero would free. A stopped call ends at its next yield
// point (see interrupt.go), within about a millisecond of work, or in its
// sleep, which ends at once (instance.sleep). It returns ctx's error if it
// had to stop calls.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()

	// Holding every token proves no call is running.
	var err error
	held := 0
wait:
	for held < p.max {
		select {
		case p.tokens <- struct{}{}:
			held++
		case <-ctx.Done():
			err = fmt.Errorf("%w: in-flight calls stopped: %w", ErrPoolClosed, context.Cause(ctx))
			break wait
		}
	}
	if err != nil {
		p.mu.Lock()
		for inst := range p.live {
			// Cancelling an idle instance is harmless: it is closed below.
			inst.cancel(ErrPoolClosed)
		}
		p.mu.Unlock()
		// Each stopped caller puts its instance back, and put closes it
		// because the pool is closed.
		for ; held < p.max; held++ {
			p.tokens <- struct{}{}
		}
	}

	p.mu.Lock()
	idle := p.idle
	p.live = map[*instance]struct{}{}
	p.idle = nil
	p.mu.Unlock()
	for _, inst := range idle {
		inst.close()
	}
	return err
}

// counts returns the live and idle instances.
func (p *pool) counts() (live, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live), len(p.idle)
}
