package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Run on a closed Pool, or one whose earlier Run
// was interrupted (its connections are closed then).
var ErrClosed = errors.New("load pool closed")

// ErrInvalidOptions is wrapped by Run's errors for bad Options.
var ErrInvalidOptions = errors.New("invalid load options")

// redialBackoff spaces the dials of a connection whose dial failed, so a
// server that is down costs a few attempts per second per connection, not
// a busy loop.
const redialBackoff = 50 * time.Millisecond

// Options say how long a Run lasts and when it gives up.
type Options struct {
	// Requests is the number of requests to make; or
	Requests int
	// Duration is how long to keep starting requests. Exactly one of
	// Requests and Duration is set.
	Duration time.Duration
	// Warmup runs the same closed loop for this long first, unmeasured:
	// neither its requests nor its errors count in the Result's figures
	// (they are in WarmupRequests and WarmupErrors).
	Warmup time.Duration
	// MaxErrors is how many failed requests the run tolerates: at the
	// next one it stops early (Result.Aborted). Negative: never stop for
	// errors. The zero value stops at the first error.
	MaxErrors int
}

func (o Options) validate() error {
	switch {
	case o.Requests < 0 || o.Duration < 0 || o.Warmup < 0:
		return fmt.Errorf("%w: negative requests, duration or warm-up", ErrInvalidOptions)
	case (o.Requests > 0) == (o.Duration > 0):
		return fmt.Errorf("%w: want exactly one of requests and duration", ErrInvalidOptions)
	}
	return nil
}

// Pool is a set of persistent connections, each driven by its own
// goroutine with one request in flight during a Run (a closed loop, as wrk
// and hey do). A connection whose exchange failed is closed and redialed.
type Pool struct {
	p *prepared

	mu     sync.Mutex
	conns  []*Conn // one per worker; nil after a failure until redialed
	closed bool
}

// DialPool opens n connections for s and makes one exchange on each, so the
// server has accepted them and set up their goroutines and buffers before
// any clock starts, and a wrong address, path or expectation fails here
// with the reason rather than as a run of errors.
func DialPool(ctx context.Context, s Spec, n int) (*Pool, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %d connections", ErrInvalidOptions, n)
	}
	p, err := s.prepare()
	if err != nil {
		return nil, err
	}
	pool := &Pool{p: p, conns: make([]*Conn, 0, n)}
	for i := range n {
		c, err := dial(ctx, p)
		if err != nil {
			_ = pool.Close()
			return nil, err
		}
		pool.conns = append(pool.conns, c)
		if err := c.Do(); err != nil {
			_ = pool.Close()
			return nil, fmt.Errorf("first request on connection %d: %w", i+1, err)
		}
	}
	return pool, nil
}

// Close closes every connection. It is safe to call more than once.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i, c := range p.conns {
		if c != nil {
			_ = c.Close()
			p.conns[i] = nil
		}
	}
	return nil
}

// Result is what a Run measured.
type Result struct {
	// Requests counts the exchanges of the measured phase that completed,
	// successfully or not (a failed redial counts as a failed request).
	Requests int
	Errors   int
	// Elapsed is the measured phase's wall time.
	Elapsed time.Duration
	// Latencies of the successful requests, sorted; each from the start of
	// the write (or the redial) to the end of the response.
	Latencies []time.Duration
	// Statuses counts responses by status, including those of failed
	// requests that got one (wrong status or body).
	Statuses map[int]int
	// FirstError is the earliest failure of the measured phase.
	FirstError error
	// CPU is the user and system CPU time of the whole process during the
	// measured phase (getrusage); 0 where that is not available.
	CPU time.Duration
	// WarmupRequests and WarmupErrors count the warm-up phase.
	WarmupRequests, WarmupErrors int
	// Aborted is set when the run stopped early at MaxErrors, Interrupted
	// when its context ended.
	Aborted, Interrupted bool
}

// OK returns the number of successful requests.
func (r *Result) OK() int { return r.Requests - r.Errors }

// Percentile returns the latency below which the fraction q (0 to 1) of the
// successful requests fell; 0 without any.
func (r *Result) Percentile(q float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	return r.Latencies[max(0, min(n-1, int(float64(n)*q)))]
}

// Max returns the longest latency of a successful request.
func (r *Result) Max() time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[len(r.Latencies)-1]
}

// Run drives every connection of the pool in a closed loop: a warm-up phase
// first when o.Warmup is set, then o.Requests requests or o.Duration of
// them. A failed request is counted, its connection closed and redialed.
// When ctx ends, the connections are closed at once (an exchange in flight
// fails and is not counted) and Run returns what it measured with
// Interrupted set; the pool is closed then. Only errors of the options or
// of a closed pool are returned. One Run at a time.
func (p *Pool) Run(ctx context.Context, o Options) (Result, error) {
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return Result{}, ErrClosed
	}
	stop := context.AfterFunc(ctx, func() { _ = p.Close() })
	defer stop()

	var res Result
	if o.Warmup > 0 {
		w := p.runPhase(ctx, &phase{end: time.Now().Add(o.Warmup), maxErrors: -1})
		res.WarmupRequests, res.WarmupErrors = w.Requests, w.Errors
	}
	if ctx.Err() == nil {
		ph := &phase{maxErrors: o.MaxErrors, record: true}
		if o.Requests > 0 {
			ph.n = int64(o.Requests)
			ph.lats = make([]time.Duration, o.Requests)
		} else {
			ph.end = time.Now().Add(o.Duration)
		}
		m := p.runPhase(ctx, ph)
		m.WarmupRequests, m.WarmupErrors = res.WarmupRequests, res.WarmupErrors
		res = m
	}
	res.Interrupted = ctx.Err() != nil
	return res, nil
}

// phase is one closed loop over the pool's connections.
type phase struct {
	n         int64     // requests to make; 0: until end
	end       time.Time // when n is 0
	maxErrors int
	record    bool
	// lats is indexed by request number when n is set (one allocation,
	// made before the phase's clock starts); the workers' own slices hold
	// them otherwise.
	lats []time.Duration

	next, errs atomic.Int64
	aborted    atomic.Bool
}

// failed counts a failure and reports whether the phase must stop.
func (ph *phase) failed() {
	if k := ph.errs.Add(1); ph.maxErrors >= 0 && k > int64(ph.maxErrors) {
		ph.aborted.Store(true)
	}
}

// tally is one worker's count; merged after the phase.
type tally struct {
	ok, errs int
	lats     []time.Duration
	statuses map[int]int // of failed exchanges that got a status
	firstErr error
	firstAt  time.Time
}

func (t *tally) fail(err error, status int) {
	t.errs++
	if status != 0 {
		if t.statuses == nil {
			t.statuses = map[int]int{}
		}
		t.statuses[status]++
	}
	if t.firstErr == nil {
		t.firstErr, t.firstAt = err, time.Now()
	}
}

// runPhase runs ph on every connection until it ends and merges the counts.
func (p *Pool) runPhase(ctx context.Context, ph *phase) Result {
	tallies := make([]tally, len(p.conns))
	var wg sync.WaitGroup
	cpu0 := ProcessCPU()
	start := time.Now()
	for i := range p.conns {
		wg.Go(func() { p.work(ctx, i, ph, &tallies[i]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := ProcessCPU() - cpu0

	res := Result{Elapsed: elapsed, CPU: cpu, Aborted: ph.aborted.Load(), Statuses: map[int]int{}}
	lats := ph.lats
	var firstAt time.Time
	for i := range tallies {
		t := &tallies[i]
		res.Requests += t.ok + t.errs
		res.Errors += t.errs
		if t.ok > 0 {
			res.Statuses[p.p.status] += t.ok
		}
		for s, k := range t.statuses {
			res.Statuses[s] += k
		}
		if t.firstErr != nil && (res.FirstError == nil || t.firstAt.Before(firstAt)) {
			res.FirstError, firstAt = t.firstErr, t.firstAt
		}
		if ph.n == 0 {
			lats = append(lats, t.lats...)
		}
	}
	if ph.n > 0 {
		// Slots of failed or never made requests hold 0; a round trip
		// never takes 0 ns.
		lats = slices.DeleteFunc(lats, func(d time.Duration) bool { return d == 0 })
	}
	if ph.record {
		slices.Sort(lats)
		res.Latencies = lats
	}
	return res
}

// work is worker i's closed loop.
func (p *Pool) work(ctx context.Context, i int, ph *phase, t *tally) {
	p.mu.Lock()
	c := p.conns[i] // Close may be clearing it
	p.mu.Unlock()
	for !ph.aborted.Load() {
		var slot int64
		if ph.n > 0 {
			if slot = ph.next.Add(1) - 1; slot >= ph.n {
				return
			}
		}
		t0 := time.Now()
		if ph.n == 0 && !t0.Before(ph.end) {
			return
		}
		if c == nil {
			var err error
			if c, err = p.redial(ctx, i); err != nil {
				if ctx.Err() != nil || errors.Is(err, ErrClosed) {
					return
				}
				t.fail(err, 0)
				ph.failed()
				select {
				case <-ctx.Done():
					return
				case <-time.After(redialBackoff):
				}
				continue
			}
		}
		err := c.Do()
		lat := time.Since(t0)
		if err != nil {
			if ctx.Err() != nil {
				return // the connection was closed under it: not a failure of the server
			}
			t.fail(err, c.Status())
			ph.failed()
			p.drop(i, c)
			c = nil
			continue
		}
		t.ok++
		switch {
		case !ph.record:
		case ph.n > 0:
			ph.lats[slot] = lat
		default:
			t.lats = append(t.lats, lat)
		}
	}
}

// redial replaces worker i's connection, unless the pool was closed.
func (p *Pool) redial(ctx context.Context, i int) (*Conn, error) {
	c, err := dial(ctx, p.p)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return nil, ErrClosed
	}
	p.conns[i] = c
	return c, nil
}

// drop closes worker i's failed connection.
func (p *Pool) drop(i int, c *Conn) {
	_ = c.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[i] == c {
		p.conns[i] = nil
	}
}
