package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nylon-functions/nylon/protocol"
)

// errUnserved marks a call skipped because no node serves a phase the
// plugin was not configured with explicitly.
var errUnserved = errors.New("phase not served")

// invoke calls phase ph of t with an encoded invocation under the phase's
// policy: one request_id for every attempt (so nodes deduplicate), retries
// with jittered exponential backoff when on_error is retry and the failure
// is retryable, and after the last failed attempt a dead letter. It returns
// the reply, errShed or errUnserved (skip the plugin), or a *CallError.
// Failed attempts are logged at DEBUG only: the caller logs the failure
// once, with everything in the *CallError (logFailure).
func (g *Gateway) invoke(ctx context.Context, t *target, ph protocol.Phase, inv []byte, meta *callMeta) (reply, error) {
	pol := &t.policy[ph]
	pm := t.metrics[ph]
	req := protocol.PluginRequest{
		Version:   protocol.Version,
		RequestID: protocol.NewRequestID(),
		SessionID: meta.session,
		Phase:     ph,
		Data:      inv,
		Timestamp: uint64(time.Now().UnixMilli()),
	}
	if meta.id.IsZero() {
		meta.id = req.RequestID
	}
	bp := g.wire.get()
	defer g.wire.put(bp)
	*bp = req.AppendMsgpack(*bp)
	payload := *bp
	fail := func(err error, n int) *CallError {
		return &CallError{Plugin: t.name, Function: t.function, Phase: ph, Subject: t.subject[ph],
			RequestID: req.RequestID, Attempts: n, Kind: kindOf(err), Status: pluginStatus(err), Err: err}
	}
	limit, overNATS := int64(pol.MaxPayload), false
	if np := t.msg.nc.MaxPayload(); np > 0 && np < limit {
		limit, overNATS = np, true // NATS would refuse the publish
	}
	if int64(len(payload)) > limit {
		err := error(&tooLargeError{size: int64(len(payload)), limit: limit, nats: overNATS})
		pm.errs.WithLabelValues(KindTooLarge).Inc()
		g.logAttempt(t, ph, req.RequestID, meta, 0, err)
		return reply{}, fail(err, 0)
	}

	attempts := pol.attempts()
	var err error
	var local bool
	var firstNode firstNodeWait
	defer firstNode.done()
	n := 1
	for {
		var rep reply
		rep, local, err = g.attempt(ctx, t, ph, req.RequestID, payload, meta)
		if err == nil {
			return rep, nil
		}
		if errors.Is(err, errShed) {
			pm.shed.Inc()
			return reply{}, errShed
		}
		// Logging calls do not wait: they hold a worker of the shared
		// logging pool, not a client.
		if errors.Is(err, protocol.ErrNoResponder) && !local && ph != protocol.PhaseLogging {
			waited := firstNode.waiting()
			if firstNode.wait(ctx, t, pol.Timeout, g.opts.firstNodeWait, g.opts.firstNodeMaxWaiting) {
				if !waited {
					g.log.Debug("gateway: no node serves the new function yet; waiting for one", "subject", t.subject[ph],
						"request_id", req.RequestID.String(), "traceparent", meta.trace)
				}
				continue // the same attempt again: no node has seen it
			}
			if ctx.Err() != nil {
				err, local = ctx.Err(), true
				break
			}
			if firstNode.full {
				err = fmt.Errorf("%w (not waiting for the new function's first node: %d calls of this route already wait)",
					err, g.opts.firstNodeMaxWaiting)
			}
		}
		if errors.Is(err, protocol.ErrNoResponder) && !t.explicit && !local {
			// The plugin lists no phases, so it may simply not have
			// this one: skip it, and do not ask again for a while.
			t.unserved[ph].Store(time.Now().Add(unservedPhaseTTL).UnixNano())
			g.log.Debug("gateway: phase not served, skipped", "plugin", t.name, "phase", ph.String(), "subject", t.subject[ph])
			return reply{}, errUnserved
		}
		kind := kindOf(err)
		if kind != KindCanceled {
			pm.errs.WithLabelValues(kind).Inc()
		}
		g.logAttempt(t, ph, req.RequestID, meta, n, err)
		if n >= attempts || local || !retryable(err) || ctx.Err() != nil {
			break
		}
		pm.retries.Inc()
		if !sleep(ctx.Done(), pol.Backoff.Delay(n, g.rng)) {
			err = ctx.Err()
			local = true
			break
		}
		n++
	}
	ce := fail(err, n)
	if deadLetterable(err, local) {
		ce.dlqSubject = g.deadLetter(t, ph, payload, req.RequestID, meta, err, n)
	}
	return reply{}, ce
}

// pluginStatus is the status a handler chose for its Error reply, or 0.
func pluginStatus(err error) int {
	var pf *pluginFailure
	if errors.As(err, &pf) {
		return pf.status
	}
	return 0
}
