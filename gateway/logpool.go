package gateway

import (
	"context"
	"sync"

	"github.com/nylon-functions/nylon/protocol"
)

// logJob is one logging phase call, its invocation already encoded so that
// nothing of the request is shared with the worker.
type logJob struct {
	t    *target
	meta callMeta
	data []byte
}

// logPool runs the logging phase off the request path: a bounded queue
// drained by a fixed number of workers. enqueue never blocks; a full queue
// drops the job (the caller counts it).
type logPool struct {
	g      *Gateway
	mu     sync.RWMutex // guards closed against a send on the closed channel
	closed bool
	jobs   chan logJob
	wg     sync.WaitGroup
	ctx    context.Context // canceled when Close gives up waiting
	cancel context.CancelFunc
}

func newLogPool(g *Gateway, workers, queue int) *logPool {
	p := &logPool{g: g, jobs: make(chan logJob, queue)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(workers)
	for range workers {
		go p.run()
	}
	return p
}

func (p *logPool) run() {
	defer p.wg.Done()
	for j := range p.jobs {
		// Failures are logged and dead-lettered by invoke; logging's
		// on_error cannot fail a request that is already answered.
		_, _ = p.g.invoke(p.ctx, j.t, protocol.PhaseLogging, j.data, &j.meta)
	}
}

// enqueue hands j to a worker, or reports false when the queue is full or
// the pool closed.
func (p *logPool) enqueue(j logJob) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	select {
	case p.jobs <- j:
		return true
	default:
		return false
	}
}

// close stops intake and waits for the queue to drain; when ctx ends first
// it cancels the calls in flight (the rest then fail at once) and returns
// ctx's error after the workers exit.
func (p *logPool) close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.jobs)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel()
		<-done
		return ctx.Err()
	}
}
