package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The dead-letter writer's bounds. A dead letter holds a whole request, so
// the queue is bounded in bytes as well as in letters; retries stop after
// dlqRetryFor so that a stream that is gone for good (deleted, or a cluster
// that does not come back) cannot hold the workers forever.
const (
	dlqWorkers        = 4
	dlqQueue          = 4096
	dlqMaxQueuedBytes = 64 << 20
	dlqRetryFor       = 30 * time.Second
	dlqAttemptTimeout = 2 * time.Second
	dlqBackoffInitial = 100 * time.Millisecond
	dlqBackoffMax     = 2 * time.Second
)

// dlqJob is one dead letter on its way to the stream.
type dlqJob struct {
	js   jetstream.JetStream
	msg  *nats.Msg
	id   string
	lost prometheus.Counter
}

// dlqWriter stores dead letters with JetStream publishes off the request
// path: a core publish is dropped without a word when the stream has no
// leader (a server lost, an election under way: the moments that make dead
// letters), so each letter is published with an acknowledgement and retried
// until the stream takes it or dlqRetryFor has passed. enqueue never
// blocks; a full queue loses the letter, counted and logged.
type dlqWriter struct {
	g      *Gateway
	mu     sync.RWMutex // guards closed against a send on the closed channel
	closed bool
	jobs   chan dlqJob
	bytes  atomic.Int64 // payload bytes queued
	wg     sync.WaitGroup
	ctx    context.Context // canceled when Close gives up waiting
	cancel context.CancelFunc
}

func newDLQWriter(g *Gateway) *dlqWriter {
	w := &dlqWriter{g: g, jobs: make(chan dlqJob, dlqQueue)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(dlqWorkers)
	for range dlqWorkers {
		go w.run()
	}
	return w
}

func (w *dlqWriter) run() {
	defer w.wg.Done()
	for j := range w.jobs {
		w.store(j)
		w.bytes.Add(-int64(len(j.msg.Data)))
	}
}

// enqueue hands j to a worker, or reports false when the queue is full or
// the writer closed.
func (w *dlqWriter) enqueue(j dlqJob) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	n := int64(len(j.msg.Data))
	if w.bytes.Add(n) > dlqMaxQueuedBytes {
		w.bytes.Add(-n)
		return false
	}
	select {
	case w.jobs <- j:
		return true
	default:
		w.bytes.Add(-n)
		return false
	}
}

// store publishes j until the stream acknowledges it, retrying what may
// pass (no leader, a timeout, a reconnect) with backoff for dlqRetryFor.
func (w *dlqWriter) store(j dlqJob) {
	deadline := time.Now().Add(dlqRetryFor)
	var err error
	attempt := 0
	for {
		attempt++
		ctx, cancel := context.WithTimeout(w.ctx, dlqAttemptTimeout)
		// The message id lets the stream drop a second copy when only the
		// acknowledgement of an earlier attempt was lost.
		_, err = j.js.PublishMsg(ctx, j.msg, jetstream.WithMsgID(j.msg.Subject+"/"+j.id))
		cancel()
		if err == nil {
			return
		}
		if dlqPermanent(err) || w.ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		d := min(dlqBackoffInitial<<min(attempt-1, 10), dlqBackoffMax)
		if !sleep(w.ctx.Done(), d) {
			break
		}
	}
	j.lost.Inc()
	w.g.log.Error("gateway: dead letter lost", "subject", j.msg.Subject, "request_id", j.id,
		"publish_attempts", attempt, "error", err)
}

// dlqPermanent reports whether publishing again cannot help.
func dlqPermanent(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrMaxPayload) ||
		errors.Is(err, nats.ErrBadSubject)
}

// close stops intake and waits for the queue to drain; when ctx ends first
// it cancels the publishes in flight (their letters are counted lost) and
// returns ctx's error after the workers exit.
func (w *dlqWriter) close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.jobs)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		w.cancel()
		return nil
	case <-ctx.Done():
		w.cancel()
		<-done
		return ctx.Err()
	}
}
