package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nylon-functions/nylon/internal/logsample"
	"github.com/nylon-functions/nylon/internal/natsready"
	"github.com/nylon-functions/nylon/protocol"
)

// reply is a successful phase call: Next or End with the handler's ops.
type reply struct {
	action protocol.Action
	ops    []protocol.Op
}

// attempt makes one request/reply exchange of an encoded PluginRequest.
// Each attempt is its own NATS request with its own reply token, so a late
// reply to an earlier attempt is dropped by the reply mux; the request_id
// check below catches anything else answering the wrong request. local is
// true when the failure happened before the request left the gateway.
func (g *Gateway) attempt(ctx context.Context, t *target, ph protocol.Phase, id protocol.RequestID, payload []byte, meta *callMeta) (rep reply, local bool, err error) {
	pol := &t.policy[ph]
	pm := t.metrics[ph]
	if err := t.msg.limiter.acquire(ctx, pol.Timeout); err != nil {
		return reply{}, true, err
	}
	pm.inflight.Inc()
	defer func() {
		pm.inflight.Dec()
		t.msg.limiter.release()
	}()

	// The node learns how long this attempt waits for its reply, so that
	// it does not start the request after the wait is over.
	hdr := nats.Header{
		protocol.HeaderTraceparent: []string{meta.trace},
		protocol.HeaderEnv:         t.msg.envHeader,  // shared: nats.go only reads it
		protocol.HeaderTimeout:     t.timeoutHdr[ph], // shared likewise
	}
	start := time.Now()
	m, err := t.msg.replies.request(ctx, t.subject[ph], hdr, payload, pol.Timeout)
	if err != nil {
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return reply{}, false, fmt.Errorf("%w: %s", protocol.ErrNoResponder, t.subject[ph])
		case ctx.Err() != nil:
			return reply{}, true, ctx.Err()
		case errors.Is(err, natsready.ErrNotSent):
			// NATS was down for the whole timeout: a timeout like any
			// other for the client, the policy and the dead letters (a
			// replay is the request's only run: it was never sent).
			pm.timeouts.Inc()
			return reply{}, false, fmt.Errorf("%w: no reply within %v: %w", protocol.ErrTimeout, pol.Timeout, err)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			pm.timeouts.Inc()
			return reply{}, false, fmt.Errorf("%w: no reply within %v", protocol.ErrTimeout, pol.Timeout)
		case errors.Is(err, nats.ErrMaxPayload):
			return reply{}, true, fmt.Errorf("%w: %d bytes: %w", protocol.ErrTooLarge, len(payload), err)
		default:
			// Closed or draining connection: nobody can answer.
			return reply{}, true, fmt.Errorf("%w: %w", protocol.ErrNoResponder, err)
		}
	}
	pm.duration.Observe(time.Since(start).Seconds())

	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return reply{}, false, serviceError(code, m.Header.Get(micro.ErrorHeader))
	}
	// The envelope's data is decoded into a pooled buffer: DecodeOps below
	// copies what it keeps out of it.
	bp := g.wire.get()
	defer g.wire.put(bp)
	resp := protocol.PluginResponse{Data: *bp}
	err = protocol.DecodeResponse(m.Data, &resp)
	*bp = resp.Data
	if err != nil {
		return reply{}, false, err // a *DecodeError, wrapping ErrDecode
	}
	if resp.RequestID != id {
		return reply{}, false, &protocol.DecodeError{Field: "request_id",
			Err: fmt.Errorf("reply is for request %s, not %s", resp.RequestID, id)}
	}
	if resp.Newer() {
		const msg = "gateway: reply has a newer protocol version"
		if g.sampler.Allow(ctx, slog.LevelWarn, logsample.KeyOf(msg, "subject", t.subject[ph])) {
			g.log.Warn(msg, "version", resp.Version, "subject", t.subject[ph], "request_id", id.String())
		}
	}
	ops, err := protocol.DecodeOps(resp.Data, nil)
	if err != nil {
		return reply{}, false, err
	}
	if status, n := refusedStatus(ops); n > 0 {
		// Once per reply (sampled): the status is ignored (the response
		// keeps the one it had, 200 for an End), which would otherwise go
		// unseen.
		const msg = "gateway: status op refused: not a final HTTP status (200-599)"
		if g.sampler.Allow(ctx, slog.LevelWarn, logsample.KeyOf(msg, "subject", t.subject[ph])) {
			g.log.Warn(msg, "plugin", t.name, "phase", ph.String(), "status", status, "refused", n,
				"subject", t.subject[ph], "request_id", id.String(), "traceparent", meta.trace)
		}
	}
	if resp.Action == protocol.ActionError {
		return reply{ops: ops}, false, &pluginFailure{PluginError: protocol.PluginError{Message: resp.Error}, status: opStatus(ops)}
	}
	return reply{action: resp.Action, ops: ops}, false, nil
}

// pluginFailure is a handler's Error reply with the status it chose, if any.
type pluginFailure struct {
	protocol.PluginError
	status int
}

func (e *pluginFailure) Unwrap() error { return &e.PluginError }

// serviceError maps a node's micro error reply (Nats-Service-Error-Code).
func serviceError(code, desc string) error {
	n, _ := strconv.Atoi(code)
	var kind error
	switch n {
	case protocol.ServiceErrOverloaded:
		kind = ErrOverloaded
	case protocol.ServiceErrTooLarge:
		kind = protocol.ErrTooLarge
	case protocol.ServiceErrDecode:
		kind = protocol.ErrDecode
	case protocol.ServiceErrTimeout:
		kind = protocol.ErrTimeout
	default:
		kind = ErrInternal
	}
	return fmt.Errorf("%w: node answered %s %q", kind, code, truncate(desc, 200))
}

// logAttempt logs a failed attempt at DEBUG with everything needed to find
// it on the node: subject, queue group, session, request id, attempt,
// traceparent. It is detail: the failure the attempts end in is logged
// once, at WARN, by whoever gives up on the call (logFailure), and
// plugins_messaging_errors_total counts every attempt.
func (g *Gateway) logAttempt(t *target, ph protocol.Phase, id protocol.RequestID, meta *callMeta, n int, err error) {
	ctx := context.Background()
	// Enabled first: the attributes would be built for nothing otherwise.
	if !g.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	g.log.LogAttrs(ctx, slog.LevelDebug, "gateway: phase call failed",
		slog.String("subject", t.subject[ph]),
		slog.String("queue", t.group),
		slog.String("plugin", t.name),
		slog.String("phase", ph.String()),
		slog.Uint64("session_id", uint64(meta.session)),
		slog.String("request_id", id.String()),
		slog.Int("attempt", n),
		slog.String("traceparent", meta.trace),
		slog.String("route", meta.route),
		slog.String("kind", kindOf(err)),
		slog.Any("error", err),
	)
}
