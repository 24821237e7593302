package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/internal/logsample"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// The dead-letter writer's bounds. A dead letter holds a whole request, so
// the queue is bounded in bytes as well as in letters; retries stop after
// dlqRetryFor so that a stream that is gone for good (deleted and not
// re-created, or a cluster that does not come back) cannot hold the
// workers forever.
const (
	dlqWorkers        = 4
	dlqQueue          = 4096
	dlqMaxQueuedBytes = 64 << 20
	dlqRetryFor       = 30 * time.Second
	dlqAttemptTimeout = 2 * time.Second
	dlqBackoffInitial = 100 * time.Millisecond
	dlqBackoffMax     = 2 * time.Second
	dlqCloseWait      = 5 * time.Second
	// A check of a stream that does not answer (re-creating it when it is
	// missing) runs at most this often unless the last one re-created it:
	// a stream that cannot be made (JetStream disabled, no permission,
	// another prefix's stream of the same name) or that exists without a
	// leader is not asked for again by every retry of every letter, and
	// its cause is logged once per interval, not once per attempt.
	dlqRecreateEvery   = 5 * time.Second
	dlqRecreateTimeout = 5 * time.Second
)

// dlqJob is one dead letter on its way to the stream.
type dlqJob struct {
	ds   *dlqStream
	msg  *nats.Msg
	id   string
	lost prometheus.Counter
}

// dlqStream is a dead-letter stream that Start made, shared by the
// messaging configs on one connection and prefix: how to publish to it,
// the settings to make it again with, and the writer's last check of it.
type dlqStream struct {
	js        jetstream.JetStream
	messaging string // the config whose settings made it, for logs
	prefix    string
	cfg       DLQConfig
	replicas  int

	// checking is held by the one worker that checks (and re-creates) the
	// stream; the others do not wait for it, see restore. It guards the
	// fields below.
	checking sync.Mutex
	checked  time.Time // when the last check began
	created  bool      // whether the last check re-created the stream
}

// dlqWriter stores dead letters with JetStream publishes off the request
// path: a core publish is dropped without a word when the stream has no
// leader (a server lost, an election under way: the moments that make dead
// letters), so each letter is published with an acknowledgement and retried
// until the stream takes it or dlqRetryFor has passed. A stream deleted
// while the gateway runs is made again (restore), so that the letters
// after a `nats stream rm` are kept, not lost until a restart. enqueue
// never blocks; a full queue loses the letter, counted and logged.
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
// When no stream answers the subject, the stream may have been deleted
// while the gateway runs (`nats stream rm`, a wiped store): restore makes
// it again, and the letter is published again at once.
func (w *dlqWriter) store(ctx context.Context, j dlqJob) {
	deadline := time.Now().Add(dlqRetryFor)
	var err error
	attempt := 0
	for {
		attempt++
		sent := time.Now()
		actx, cancel := context.WithTimeout(ctx, dlqAttemptTimeout)
		// The message id lets the stream drop a second copy when only the
		// acknowledgement of an earlier attempt was lost.
		_, err = j.ds.js.PublishMsg(actx, j.msg, jetstream.WithMsgID(j.msg.Subject+"/"+j.id))
		cancel()
		if err == nil {
			return
		}
		if dlqPermanent(err) || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) && w.restore(ctx, j.ds, j.msg.Subject, sent) {
			continue
		}
		w.g.log.Debug("gateway: dead letter not stored yet; retrying", "subject", j.msg.Subject, "request_id", j.id,
			"publish_attempts", attempt, "error", err)
		d := min(dlqBackoffInitial<<min(attempt-1, 10), dlqBackoffMax)
		if !sleep(ctx.Done(), d) {
			break
		}
	}
	j.lost.Inc()
	// Per letter: while JetStream is down every letter ends here, so the
	// line is sampled per subject like the other per-request lines.
	const msg = "gateway: dead letter lost"
	if w.g.sampler.Allow(ctx, slog.LevelError, logsample.KeyOf(msg, "subject", j.msg.Subject)) {
		w.g.log.Error(msg, "subject", j.msg.Subject, "request_id", j.id, "publish_attempts", attempt, "error", err)
	}
}

// restore checks ds after a publish to subject, begun at sent, found no
// stream, re-creates the stream when it is missing (restoreDLQ: Start's
// settings and ownership check), and reports whether the letter should be
// published again at once: true when a check made the stream since that
// publish began.
//
// One check at a time per stream, and the workers that find one under way
// do not wait for it: they back off and publish again, as for any stream
// that does not answer, and by then the stream is usually back. So a
// deletion costs one re-creation, not one per worker (or per letter), and
// no worker is held while another talks to JetStream: letters of other
// streams keep moving. A check that did not re-create the stream (it
// failed, or the stream exists without a leader) is not repeated within
// dlqRecreateEvery.
func (w *dlqWriter) restore(ctx context.Context, ds *dlqStream, subject string, sent time.Time) bool {
	if !ds.checking.TryLock() {
		return false
	}
	defer ds.checking.Unlock()
	switch {
	case ds.checked.After(sent):
		// Checked since this publish began: its outcome holds for this
		// letter too (made again: publish now; otherwise back off).
		return ds.created
	case !ds.created && !ds.checked.IsZero() && time.Since(ds.checked) < dlqRecreateEvery:
		return false
	}
	ds.checked = time.Now()
	cctx, cancel := context.WithTimeout(ctx, dlqRecreateTimeout)
	defer cancel()
	created, err := restoreDLQ(cctx, ds.js, ds.prefix, ds.cfg, ds.replicas)
	ds.created = created
	name := DLQStreamName(ds.prefix)
	switch {
	case err != nil:
		w.g.log.Warn("gateway: dead-letter stream does not answer and was not re-created; retrying the letters",
			"stream", name, "messaging", ds.messaging, "subject", subject, "error", err)
	case created:
		w.g.log.Warn("gateway: dead-letter stream re-created: no stream took a dead letter (deleted while the gateway ran?)",
			"stream", name, "messaging", ds.messaging, "subject", subject, "subjects", protocol.DLQWildcard(ds.prefix))
	default:
		w.g.log.Debug("gateway: dead-letter stream exists but did not answer (no leader, or made again by another gateway); retrying the letters",
			"stream", name, "messaging", ds.messaging, "subject", subject)
	}
	return created
}

// The stream answers worth retrying (nats.go names no constants for them):
//   - jsErrClusterNotAvailable is nats-server's JSClusterNotAvailErr,
//     "JetStream system temporarily unavailable".
//   - jsErrDuplicateInProcess is JSStreamDuplicateMessageConflict,
//     "duplicate message id is in process": an earlier attempt of this
//     letter reached a leader that has not committed it yet (it lost its
//     quorum, so that attempt's acknowledgement timed out). A later attempt
//     is acknowledged as a duplicate once it commits, or stored if the
//     leader drops it.
const (
	jsErrClusterNotAvailable jetstream.ErrorCode = 10008
	jsErrDuplicateInProcess  jetstream.ErrorCode = 10158
)

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
	return errors.As(err, &apiErr) &&
		apiErr.ErrorCode != jsErrClusterNotAvailable && apiErr.ErrorCode != jsErrDuplicateInProcess
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
