package gateway

import (
	"context"
	"sync"
)

// workQueue runs jobs off the request path: a bounded queue drained by a
// fixed number of workers. push never blocks; a full or closed queue
// refuses the job, and the caller counts it. The logging phase and the
// dead-letter writer are its two users.
type workQueue[T any] struct {
	mu     sync.RWMutex // guards closed against a send on the closed channel
	closed bool
	jobs   chan T
	wg     sync.WaitGroup
	ctx    context.Context // passed to run; canceled when close gives up waiting
	cancel context.CancelFunc
}

func newWorkQueue[T any](workers, queue int, run func(ctx context.Context, job T)) *workQueue[T] {
	q := &workQueue[T]{jobs: make(chan T, queue)}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.wg.Add(workers)
	for range workers {
		go func() {
			defer q.wg.Done()
			for j := range q.jobs {
				run(q.ctx, j)
			}
		}()
	}
	return q
}

// push hands j to a worker, or reports false when the queue is full or
// closed.
func (q *workQueue[T]) push(j T) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return false
	}
	select {
	case q.jobs <- j:
		return true
	default:
		return false
	}
}

// close stops intake and waits for the queue to drain; when ctx ends first
// it cancels the context of the jobs in flight (the rest then run with it
// canceled and end at once) and returns ctx's error after the workers
// exit. Safe to call twice.
func (q *workQueue[T]) close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.jobs)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		q.cancel()
		return nil
	case <-ctx.Done():
		q.cancel()
		<-done
		return ctx.Err()
	}
}
