package gateway

import (
	"context"
	"errors"
	"fmt"
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
	dlqCloseWait      = 5 * time.Second
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
	g     *Gateway
	q     *workQueue[dlqJob]
	bytes atomic.Int64 // payload bytes queued
}

func newDLQWriter(g *Gateway) *dlqWriter {
	w := &dlqWriter{g: g}
	w.q = newWorkQueue(dlqWorkers, dlqQueue, func(ctx context.Context, j dlqJob) {
		w.store(ctx, j)
		w.bytes.Add(-int64(len(j.msg.Data)))
	})
	return w
}

// enqueue hands j to a worker, or reports false when the queue is full (in
// letters or bytes) or the writer closed.
func (w *dlqWriter) enqueue(j dlqJob) bool {
	n := int64(len(j.msg.Data))
	if w.bytes.Add(n) > dlqMaxQueuedBytes || !w.q.push(j) {
		w.bytes.Add(-n)
		return false
	}
	return true
}

// store publishes j until the stream acknowledges it, retrying what may
// pass (no leader, a timeout, a reconnect) with backoff for dlqRetryFor.
func (w *dlqWriter) store(ctx context.Context, j dlqJob) {
	deadline := time.Now().Add(dlqRetryFor)
	var err error
	attempt := 0
	for {
		attempt++
		actx, cancel := context.WithTimeout(ctx, dlqAttemptTimeout)
		// The message id lets the stream drop a second copy when only the
		// acknowledgement of an earlier attempt was lost.
		_, err = j.js.PublishMsg(actx, j.msg, jetstream.WithMsgID(j.msg.Subject+"/"+j.id))
		cancel()
		if err == nil {
			return
		}
		if dlqPermanent(err) || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		d := min(dlqBackoffInitial<<min(attempt-1, 10), dlqBackoffMax)
		if !sleep(ctx.Done(), d) {
			break
		}
	}
	j.lost.Inc()
	w.g.log.Error("gateway: dead letter lost", "subject", j.msg.Subject, "request_id", j.id,
		"publish_attempts", attempt, "error", err)
}

// jsErrClusterNotAvailable is nats-server's JSClusterNotAvailErr,
// "JetStream system temporarily unavailable": the one stream answer worth
// retrying (nats.go names no constant for it).
const jsErrClusterNotAvailable jetstream.ErrorCode = 10008

// dlqPermanent reports whether publishing again cannot help. No answer (no
// responders while the stream has no leader, a timeout, a reconnect) may
// pass; an answer of the stream itself (a limit reached under discard
// new, a message over its max_msg_size, a store that failed) is given
// again to every retry, and retrying would hold a worker for dlqRetryFor
// per letter, so that letters for healthy streams wait behind it.
func dlqPermanent(err error) bool {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrMaxPayload) ||
		errors.Is(err, nats.ErrBadSubject) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode != jsErrClusterNotAvailable
}

// close stops intake and waits, at most dlqCloseWait and until ctx ends,
// for the queue to drain; the letters still queued or being retried then
// are counted lost. A stream that stores now drains the queue in
// milliseconds; one that cannot store would otherwise hold the whole
// shutdown budget (each letter retries for dlqRetryFor), leaving none for
// the node's drain and NATS.
func (w *dlqWriter) close(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, dlqCloseWait)
	defer cancel()
	if err := w.q.close(wctx); err != nil {
		return fmt.Errorf("dead letters: those not stored within %v were counted lost: %w", dlqCloseWait, err)
	}
	return nil
}
