package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nylon-functions/nylon/internal/logsample"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// job is one admitted request, pooled by the node: its decoded envelope and
// invocation keep their buffers from one request to the next.
type job struct {
	ep    *endpoint
	v     *version
	reply string
	trace string
	start time.Time
	// expires is when the caller stops waiting for the reply (its
	// Nylon-Timeout-Ms from start); zero when it did not say.
	expires time.Time
	dedup   *dedupEntry // the running entry in the function's dedup cache, if any

	req protocol.PluginRequest
	inv protocol.Invocation
	ops []byte
	out []byte // reply buffer, reused when the reply is not remembered
}

func (n *Node) getJob() *job {
	if j, ok := n.jobs.Get().(*job); ok {
		return j
	}
	return new(job)
}

// putJob returns j to the pool, dropping references to request data and
// oversized buffers.
func (n *Node) putJob(j *job) {
	const keep = 64 << 10
	j.ep, j.v, j.reply, j.trace, j.expires, j.dedup = nil, nil, "", "", time.Time{}, nil
	if cap(j.req.Data) > keep {
		j.req.Data = nil
	}
	if cap(j.ops) > keep {
		j.ops = nil
	}
	if cap(j.out) > keep {
		j.out = nil
	}
	if cap(j.inv.Request.Body) > keep || (j.inv.Response != nil && cap(j.inv.Response.Body) > keep) {
		j.inv = protocol.Invocation{}
	}
	n.jobs.Put(j)
}

// dispatch is an endpoint's message handler. It runs on the endpoint's
// subscription goroutine, so it only admits work: check size, decode the
// envelope, answer duplicates, and queue the request for a worker of the
// serving version — or refuse it at once with a micro error.
func (f *function) dispatch(ep *endpoint, msg *nats.Msg) {
	start := time.Now()
	n := f.node
	trace := headerValue(msg.Header, protocol.HeaderTraceparent)
	if len(trace) > maxTraceparent {
		// Not a traceparent: ignored, as W3C Trace Context says of an
		// invalid one. Headers are outside the payload limits, so a
		// megabyte value would otherwise be kept with each queued
		// request and waiting duplicate, echoed and logged.
		trace = ""
	}
	var expires time.Time
	if v := headerValue(msg.Header, protocol.HeaderTimeout); v != "" {
		d, err := protocol.ParseTimeout(v)
		if err != nil {
			ep.m.bad.Inc()
			f.replyError(ep, msg.Reply, trace, start, protocol.ServiceErrDecode, err.Error())
			return
		}
		expires = start.Add(d)
	}
	if err := f.checkSize(ep.phase, len(msg.Data)); err != nil {
		ep.m.tooLarge.Inc()
		f.replyError(ep, msg.Reply, trace, start, protocol.ServiceErrTooLarge, err.Error())
		return
	}
	j := n.getJob()
	if err := protocol.DecodeRequest(msg.Data, &j.req); err != nil {
		n.putJob(j)
		ep.m.bad.Inc()
		f.replyError(ep, msg.Reply, trace, start, protocol.ServiceErrDecode, err.Error())
		return
	}
	if j.req.Phase != ep.phase {
		err := fmt.Sprintf("decode phase: envelope says %s, subject %s serves %s", j.req.Phase, ep.subject, ep.phase)
		n.putJob(j)
		ep.m.bad.Inc()
		f.replyError(ep, msg.Reply, trace, start, protocol.ServiceErrDecode, err)
		return
	}
	if j.req.Newer() {
		f.warnNewer(j.req.Version)
	}
	j.ep, j.reply, j.trace, j.start, j.expires = ep, msg.Reply, trace, start, expires

	if f.dedup != nil && !j.req.RequestID.IsZero() {
		key := dedupKey{phase: ep.phase, session: j.req.SessionID, id: j.req.RequestID}
		out, lead, reply, errText := f.dedup.begin(key, waiter{reply: msg.Reply, traceparent: trace, start: start, expires: expires})
		switch out {
		case dedupHit:
			n.putJob(j)
			ep.dedupHits.Add(1)
			ep.m.dedupHits.Inc()
			ep.record(start, errText)
			f.publish(msg.Reply, trace, reply)
			return
		case dedupJoined:
			n.putJob(j)
			ep.dedupHits.Add(1)
			ep.m.dedupHits.Inc()
			if msg.Reply == "" {
				ep.record(start, "") // not queued: nobody waits for its answer
			}
			return
		case dedupFull:
			id := j.req.RequestID.String()
			n.putJob(j)
			ep.m.refused.Inc()
			f.replyError(ep, msg.Reply, trace, start, protocol.ServiceErrOverloaded,
				fmt.Sprintf("overloaded: request %s of function[%s] already has %d duplicates waiting for its reply", id, f.name, maxWaiters))
			return
		case dedupLead:
			j.dedup = lead
		}
	}

	v := f.acquire(ep.phase)
	if v == nil {
		ep.m.refused.Inc()
		f.fail(j, protocol.ServiceErrOverloaded, fmt.Sprintf("unavailable: function[%s] has no loaded version serving %s", f.name, ep.phase))
		return
	}
	j.v = v
	ep.m.inflight.Inc()
	select {
	case v.queue <- j:
	default:
		ep.m.inflight.Dec()
		v.release()
		j.v = nil
		ep.overloaded.Add(1)
		ep.m.overloaded.Inc()
		f.fail(j, protocol.ServiceErrOverloaded, fmt.Sprintf("overloaded: function[%s] has %d workers busy and %d requests queued", f.name, v.workers, cap(v.queue)))
	}
}

// checkSize refuses a request message too large to admit: over the
// serving version's max_body_bytes plus protocol.RequestOverhead when its
// deployment sets a body limit (that limit, not the node's defaults, is
// what the deployer asked for and what the gateway lets through), else over
// the node's PayloadLimits for the phase.
func (f *function) checkSize(phase protocol.Phase, n int) error {
	if rt := f.route.Load(); rt != nil {
		if v := rt.serving(phase); v != nil && v.maxMessage > 0 {
			if n > v.maxMessage {
				return &protocol.DecodeError{Field: "payload", Err: fmt.Errorf("%w: %d bytes, limit %d for %s (max_body_bytes %d + %d for the rest of the request)",
					protocol.ErrTooLarge, n, v.maxMessage, phase, v.maxBody, protocol.RequestOverhead)}
			}
			return nil
		}
	}
	return f.node.cfg.PayloadLimits.Check(phase, n)
}

// bodyTooLarge describes a body of inv over max (the request's, the
// response's or the WebSocket event's payload), or returns "".
func bodyTooLarge(inv *protocol.Invocation, max int) string {
	what, n := "request body", len(inv.Request.Body)
	if r := inv.Response; r != nil && len(r.Body) > n {
		what, n = "response body", len(r.Body)
	}
	if ws := inv.WS; ws != nil && len(ws.Payload) > n {
		what, n = "WebSocket payload", len(ws.Payload)
	}
	if n <= max {
		return ""
	}
	return fmt.Sprintf("%s: %s of %d bytes, over max_body_bytes %d", protocol.ErrTooLarge, what, n, max)
}

// run executes an admitted request on a worker of v and answers it.
func (f *function) run(v *version, j *job) {
	ep := j.ep
	defer func() {
		ep.m.inflight.Dec()
		v.release()
	}()

	if now := time.Now(); f.expired(j, now) {
		// Under overload a queue fills with requests whose callers have
		// given up (and retried, or failed the HTTP request): running them
		// would spend the workers on answers nobody reads, and every later
		// request would wait behind them too. A call already running is
		// never cut short: a retry joins it and takes its reply.
		ep.m.expired.Inc()
		f.log.Debug("platform: request expired in the queue", "subject", ep.subject, "queue", ep.queue,
			"waited", now.Sub(j.start), "request_id", j.req.RequestID.String(), "traceparent", j.trace)
		f.fail(j, protocol.ServiceErrTimeout, fmt.Sprintf("expired: queued %v by function[%s], past the caller's %s; not run",
			now.Sub(j.start).Round(time.Millisecond), f.name, protocol.HeaderTimeout))
		return
	}
	if err := protocol.DecodeInvocation(j.req.Data, &j.inv); err != nil {
		ep.m.bad.Inc()
		f.fail(j, protocol.ServiceErrDecode, err.Error())
		return
	}
	event := uint32(0)
	if ep.phase == protocol.PhaseEvent {
		if j.inv.WS == nil {
			ep.m.bad.Inc()
			f.fail(j, protocol.ServiceErrDecode, "decode data.ws: a WebSocket event request has no event")
			return
		}
		if event = j.inv.WS.Kind.EventNumber(); event == 0 {
			ep.m.bad.Inc()
			f.fail(j, protocol.ServiceErrDecode, fmt.Sprintf("decode data.ws.kind: unknown event kind %q", j.inv.WS.Kind))
			return
		}
	}
	if v.maxBody > 0 {
		// The message fit max_body_bytes plus the overhead; the body
		// itself must fit max_body_bytes, as at the gateway.
		if desc := bodyTooLarge(&j.inv, v.maxBody); desc != "" {
			ep.m.tooLarge.Inc()
			f.fail(j, protocol.ServiceErrTooLarge, desc)
			return
		}
	}
	mergeConfig(&j.inv, v.config)

	// The module stops the call at the function's timeout, or when a drain
	// that ran out of time closes it (forceClose). The context is never
	// done: a cancellable one would cost every call a watch on it.
	callStart := time.Now()
	res, err := v.mod.Call(context.Background(), ep.phase, event, &j.inv, j.req.RequestID)
	ep.m.duration.Observe(time.Since(callStart).Seconds())

	resp := protocol.PluginResponse{
		Version:   protocol.Version,
		RequestID: j.req.RequestID,
		SessionID: j.req.SessionID,
	}
	switch {
	case err == nil:
		resp.Action = res.Action
		j.ops = protocol.AppendOps(j.ops[:0], res.Ops)
		resp.Data = j.ops
		switch res.Action {
		case protocol.ActionNext:
			ep.m.outcome[idxNext].Inc()
		case protocol.ActionEnd:
			ep.m.outcome[idxEnd].Inc()
		default:
			resp.Error = res.Error
			if resp.Error == "" {
				resp.Error = "handler returned Error"
			}
			ep.handlerErrors.Add(1)
			ep.m.outcome[idxError].Inc()
			ep.m.errors.Inc()
		}
	case errors.Is(err, wasmhost.ErrTimeout):
		resp.Action, resp.Error = protocol.ActionError, fmt.Sprintf("timeout: %s ran past %v", ep.phase, v.timeout)
		ep.timeouts.Add(1)
		ep.handlerErrors.Add(1)
		ep.m.timeouts.Inc()
		ep.m.outcome[idxTimeout].Inc()
		ep.m.errors.Inc()
		if f.allowLog(slog.LevelWarn, msgTimedOut, ep.subject) {
			f.log.Warn(msgTimedOut, "subject", ep.subject, "queue", ep.queue, "version", v.rec.Version,
				"timeout", v.timeout, "request_id", j.req.RequestID.String(), "session_id", j.req.SessionID, "traceparent", j.trace)
		}
	case guestFault(err):
		resp.Action, resp.Error = protocol.ActionError, err.Error()
		ep.traps.Add(1)
		ep.handlerErrors.Add(1)
		ep.m.traps.Inc()
		ep.m.outcome[idxTrap].Inc()
		ep.m.errors.Inc()
		if f.allowLog(slog.LevelWarn, msgTrapped, ep.subject) {
			f.log.Warn(msgTrapped, "subject", ep.subject, "queue", ep.queue, "version", v.rec.Version,
				"request_id", j.req.RequestID.String(), "session_id", j.req.SessionID, "traceparent", j.trace, "err", err)
		}
	case errors.Is(err, wasmhost.ErrInputTooLarge):
		ep.m.tooLarge.Inc()
		f.fail(j, protocol.ServiceErrTooLarge, err.Error())
		return
	default:
		// The node, not the handler, failed (the module was closed by a
		// drain that ran out of time, ...): a transport error the caller
		// may retry elsewhere, so it is neither remembered nor a Plugin
		// error.
		ep.m.outcome[idxInternal].Inc()
		ep.m.errors.Inc()
		code := protocol.ServiceErrInternal
		if errors.Is(err, wasmhost.ErrPoolClosed) || errors.Is(err, wasmhost.ErrHostClosed) {
			code = protocol.ServiceErrOverloaded
		}
		if f.allowLog(slog.LevelError, msgCallFailed, ep.subject) {
			f.log.Error(msgCallFailed, "subject", ep.subject, "queue", ep.queue, "version", v.rec.Version,
				"request_id", j.req.RequestID.String(), "session_id", j.req.SessionID, "traceparent", j.trace, "err", err)
		}
		f.fail(j, code, fmt.Sprintf("internal: %s: %v", ep.phase, err))
		return
	}
	f.answer(j, &resp)
}

// Messages of the per-request lines, sampled per subject by allowLog.
const (
	msgTimedOut      = "platform: handler timed out"
	msgTrapped       = "platform: handler trapped"
	msgCallFailed    = "platform: call failed"
	msgReplyTooLarge = "platform: reply over NATS max_payload"
)

// allowLog reports whether a per-request line may be written: a few a
// second per message and subject, the rest counted and summed up in one
// line per interval ("suppressed=N"), so that a guest failing every
// request cannot flood the node's log. The metrics count every one.
func (f *function) allowLog(level slog.Level, msg, subject string) bool {
	return f.node.sampler.Allow(context.Background(), level, logsample.KeyOf(msg, "subject", subject))
}

// expired reports whether every caller waiting for j has stopped waiting
// by now: its own, and for a deduplicated request the retries that joined
// it. Only the second check takes the cache's lock, and only once the
// first caller's time is up.
func (f *function) expired(j *job, now time.Time) bool {
	if j.expires.IsZero() || !now.After(j.expires) {
		return false
	}
	return j.dedup == nil || f.dedup.expired(j.dedup, now)
}

// guestFault reports whether err is the guest's own failure — a trap or
// exit, its memory limit, an ABI violation — as opposed to the node's. The
// instance is discarded and the caller gets action Error (a Plugin error).
func guestFault(err error) bool {
	var te *wasmhost.TrapError
	return errors.As(err, &te) || errors.Is(err, wasmhost.ErrMemoryLimit) || errors.Is(err, wasmhost.ErrABI)
}

// answer encodes resp, replies to j and to the duplicates that waited for
// it, and remembers the reply for later duplicates.
func (f *function) answer(j *job, resp *protocol.PluginResponse) {
	var b []byte
	if j.dedup != nil {
		// Remembered: the cache keeps this buffer, so it cannot be pooled.
		b = resp.AppendMsgpack(make([]byte, 0, replySize(resp)))
	} else {
		j.out = resp.AppendMsgpack(slices.Grow(j.out[:0], replySize(resp)))
		b = j.out
	}
	ep := j.ep
	if mp := f.node.nc.MaxPayload(); mp > 0 && int64(len(b)+replyHeaderRoom) > mp {
		// NATS would refuse the publish and the caller would wait out its
		// timeout (and retry, to the same end): tell it now. The guest
		// stayed within its output limit, but ops add framing, and a
		// server's max_payload can be below the node's limits.
		if f.allowLog(slog.LevelWarn, msgReplyTooLarge, ep.subject) {
			f.log.Warn(msgReplyTooLarge, "subject", ep.subject, "request_id", j.req.RequestID.String(),
				"bytes", len(b), "max_payload", mp, "traceparent", j.trace)
		}
		f.fail(j, protocol.ServiceErrInternal, fmt.Sprintf("reply of %d bytes is over the %d bytes one NATS message may carry", len(b), mp))
		return
	}
	ep.record(j.start, resp.Error)
	f.publish(j.reply, j.trace, b)
	if j.dedup != nil {
		for _, w := range f.dedup.finish(j.dedup, b, resp.Error, true) {
			ep.record(w.start, resp.Error)
			f.publish(w.reply, w.traceparent, b)
		}
	}
	f.node.putJob(j)
}

// maxTraceparent is the longest traceparent header a request may carry to
// have it echoed and logged: 55 bytes in W3C version 00, and room for the
// fields a later version may add.
const maxTraceparent = 256

// replyHeaderRoom is what a reply's NATS headers (traceparent) and protocol
// line may take beside its data, for the max_payload check.
const replyHeaderRoom = maxTraceparent + 64

// replySize is at least the encoded size of resp, so that AppendMsgpack
// never grows the buffer: the six keys and their values take under 100
// bytes besides data and error.
func replySize(resp *protocol.PluginResponse) int { return 128 + len(resp.Data) + len(resp.Error) }

// fail answers j (and any duplicates waiting for it) with a micro error and
// forgets its request id, so that a retry runs again.
func (f *function) fail(j *job, code int, desc string) {
	ep := j.ep
	f.replyError(ep, j.reply, j.trace, j.start, code, desc)
	if j.dedup != nil {
		for _, w := range f.dedup.finish(j.dedup, nil, "", false) {
			f.replyError(ep, w.reply, w.traceparent, w.start, code, desc)
		}
	}
	f.node.putJob(j)
}

// replyError sends a micro error reply (no body, the Nats-Service-Error
// headers) and accounts it.
func (f *function) replyError(ep *endpoint, reply, trace string, start time.Time, code int, desc string) {
	desc = headerSafe(desc)
	ep.record(start, strconv.Itoa(code)+":"+desc)
	if reply != "" {
		h := nats.Header{
			micro.ErrorHeader:     []string{desc},
			micro.ErrorCodeHeader: []string{strconv.Itoa(code)},
		}
		if trace != "" {
			h[protocol.HeaderTraceparent] = []string{trace}
		}
		if err := f.node.nc.PublishMsg(&nats.Msg{Subject: reply, Header: h}); err != nil {
			f.log.Debug("platform: reply failed", "subject", reply, "err", err)
		}
	}
}

// publish sends a reply, echoing the caller's traceparent. Requests without
// a reply subject (fire and forget) get none.
func (f *function) publish(reply, trace string, data []byte) {
	if reply == "" {
		return
	}
	var err error
	if trace == "" {
		err = f.node.nc.Publish(reply, data)
	} else {
		// PublishMsg encodes the message before it returns, so one message
		// and header map per node serve every reply instead of three
		// allocations per reply.
		m := f.node.getReplyMsg()
		m.msg.Subject, m.msg.Data, m.trace[0] = reply, data, trace
		err = f.node.nc.PublishMsg(&m.msg)
		f.node.putReplyMsg(m)
	}
	if err != nil {
		f.log.Debug("platform: reply failed", "subject", reply, "err", err)
	}
}

// replyMsg is a reusable reply carrying a traceparent header: msg.Header
// maps the header name to trace[:], so setting trace[0] sets the header.
type replyMsg struct {
	msg   nats.Msg
	trace [1]string
}

func (n *Node) getReplyMsg() *replyMsg {
	if m, ok := n.replies.Get().(*replyMsg); ok {
		return m
	}
	m := new(replyMsg)
	m.msg.Header = nats.Header{protocol.HeaderTraceparent: m.trace[:]}
	return m
}

func (n *Node) putReplyMsg(m *replyMsg) {
	m.msg.Subject, m.msg.Data, m.trace[0] = "", nil, ""
	n.replies.Put(m)
}

// warnNewer logs, at most once a minute per function, that callers send a
// protocol version newer than this node writes.
func (f *function) warnNewer(v uint16) {
	now := time.Now().Unix()
	last := f.lastNewerWarn.Load()
	if now-last < 60 || !f.lastNewerWarn.CompareAndSwap(last, now) {
		return
	}
	f.log.Warn("platform: request uses a newer protocol version; decoded what this node knows",
		"version", v, "node_version", protocol.Version)
}

// headerValue returns the first value of header name in h, whatever the
// case of its name: NATS headers are case-sensitive, and a caller in
// another language may not spell them as we do.
func headerValue(h nats.Header, name string) string {
	if len(h) == 0 {
		return ""
	}
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

// mergeConfig adds the deployment's config pairs the caller did not send:
// the route's config (sent by the gateway) wins over the deployment's.
func mergeConfig(inv *protocol.Invocation, config []protocol.KV) {
	if len(config) == 0 {
		return
	}
	if len(inv.Config) == 0 {
		inv.Config = append(inv.Config, config...)
		return
	}
	sent := len(inv.Config)
	for _, kv := range config {
		if _, ok := protocol.Lookup(inv.Config[:sent], kv.Key); !ok {
			inv.Config = append(inv.Config, kv)
		}
	}
}

// headerSafe makes s a single header line of at most 1 KiB.
func headerSafe(s string) string {
	if len(s) > 1024 {
		s = s[:1024]
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}
