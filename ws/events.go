package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/natsready"
	"github.com/nylon-functions/nylon/protocol"
)

// headerServiceErrorCode is the header of a NATS micro error reply.
const headerServiceErrorCode = "Nats-Service-Error-Code"

// headerServiceError carries the micro error's description.
const headerServiceError = "Nats-Service-Error"

// eventState is what eventLoop keeps per connection: the invocation (the
// upgrade request and config never change; only the WS event does) and
// buffers reused from one event to the next.
type eventState struct {
	inv     protocol.Invocation
	wsEvent protocol.WSEvent
	trace   protocol.Trace // one trace per connection, a span per event
	header  nats.Header
	invBuf  []byte
	reqBuf  []byte
	resp    protocol.PluginResponse
	ops     []protocol.Op
	// The last event's request id and traceparent, for failure logs.
	requestID   protocol.RequestID
	traceparent string
	attempts    int
	rooms       map[string]struct{} // rooms this connection is in
	opened      bool                // the open event succeeded: a close event follows
	closing     bool                // the close event is being handled
	warned      bool                // a newer protocol version was logged once
	// firstNode is how long an event that finds no responder waits for a
	// new function's first node (WithFirstNodeWait); 0: not at all.
	firstNode time.Duration
}

func (s *eventState) init(c *conn, r *http.Request, config []protocol.KV) {
	s.inv = protocol.Invocation{Request: upgradeRequest(r), WS: &s.wsEvent, Config: config}
	s.wsEvent.ConnectionID = c.id
	s.trace = protocol.ContinueTrace(r.Header.Get(protocol.HeaderTraceparent))
	s.rooms = make(map[string]struct{})
	s.firstNode = firstNodeWait(r)
}

// eventFailure is why an event could not be handled; it decides the close
// code the client gets.
type eventFailure struct {
	outcome string // metrics label
	// kind is the dead-letter error kind (Timeout, NoResponder, Decode,
	// Overloaded, Internal); empty when the event is not dead-lettered: the
	// handler's own Error, or the edge shutting down.
	kind string
	err  error
}

// errGivenUp marks an event given up because its connection was already
// closing: it closes nothing, is not dead-lettered (nobody waits for it,
// there is nothing to replay) and is logged at debug level.
var errGivenUp = errors.New("given up, the connection is closing")

func (f *eventFailure) Error() string { return f.err.Error() }
func (f *eventFailure) Unwrap() error { return f.err }

// eventLoop sends the connection's events one at a time, in order, and
// applies each reply's ops before the next event goes out.
func (c *conn) eventLoop() {
	defer close(c.eventsDone)
	s := &c.ev
	for {
		ev, ok := c.events.take()
		if !ok {
			return
		}
		switch ev.kind {
		case protocol.WSOpen:
			if c.closedByEdge() {
				continue // closed before the function heard of it
			}
			if c.handle(ev) {
				s.opened = true
			}
		case protocol.WSClose:
			s.closing = true
			// Leave first: no room message is queued to a closed connection,
			// and the last member's leave releases the subscription.
			c.leaveAll()
			if s.opened {
				s.wsEvent.CloseCode = uint16(c.code)
				s.wsEvent.CloseReason = c.reason
				c.handle(ev)
			}
		default:
			if c.closedByEdge() {
				continue // the edge is closing it: the client gets no answer
			}
			c.handle(ev)
		}
	}
}

// handle sends one event and applies the reply's ops. On failure the
// connection is closed (unless this is the close event) and it reports false.
func (c *conn) handle(ev inEvent) bool {
	s := &c.ev
	start := time.Now()
	ops, err := c.request(ev)
	kind := string(ev.kind)
	c.e.m.eventLatency.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		var f *eventFailure
		outcome := outcomeTransport
		if errors.As(err, &f) {
			outcome = f.outcome
			c.deadLetter(f)
		}
		c.e.m.event(kind, outcome)
		if errors.Is(err, errGivenUp) {
			c.log.Debug("ws event given up, connection closing", "event", kind, "outcome", outcome,
				"subject", c.subject, "request_id", s.requestID.String(), "error", err)
			return false
		}
		if s.closing {
			c.log.Warn("ws close event failed", "outcome", outcome, "subject", c.subject,
				"request_id", s.requestID.String(), "traceparent", s.traceparent, "error", err)
			return false
		}
		code, reason := websocket.StatusInternalError, "internal error"
		if outcome == outcomeNoResponder {
			code, reason = websocket.StatusTryAgainLater, "try again later"
		}
		if c.allowLog(slog.LevelError, msgEventFailed, c.subject) {
			c.log.Error(msgEventFailed, "event", kind, "outcome", outcome, "close_code", int(code),
				"subject", c.subject, "request_id", s.requestID.String(), "traceparent", s.traceparent, "error", err)
		}
		c.stop(code, reason, stopByEdge)
		return false
	}
	c.e.m.event(kind, outcomeOK)
	c.apply(ops)
	return true
}

// request sends ev to the function and returns the ops of its reply. No
// responders is retried with backoff (the event was not delivered); a
// timeout is not (the handler may have run).
func (c *conn) request(ev inEvent) ([]protocol.Op, error) {
	s := &c.ev
	s.wsEvent.Kind = ev.kind
	s.wsEvent.Payload = ev.payload
	s.invBuf = protocol.AppendInvocation(s.invBuf[:0], &s.inv)
	s.wsEvent.Payload = nil
	req := protocol.PluginRequest{
		Version:   protocol.Version,
		RequestID: protocol.NewRequestID(),
		SessionID: c.session,
		Phase:     protocol.PhaseEvent,
		Method:    ev.kind.EventNumber(),
		Data:      s.invBuf,
		Timestamp: uint64(time.Now().UnixMilli()),
	}
	s.reqBuf = req.AppendMsgpack(s.reqBuf[:0])
	s.requestID, s.traceparent = req.RequestID, s.trace.Next()
	s.header = c.eventHeader(s.header, s.traceparent)
	msg := &nats.Msg{Subject: c.subject, Data: s.reqBuf, Header: s.header}

	var reply *nats.Msg
	backoff := 50 * time.Millisecond
	var waitUntil time.Time // set by the first NoResponder when the function is new
	for attempt := 0; ; attempt++ {
		s.attempts = attempt + 1
		ctx, cancel := context.WithTimeout(c.e.ctx, c.e.cfg.EventTimeout)
		// Not into nats.go's reconnect buffer while NATS is down: sent
		// once reconnected, the event would run after its client was
		// closed and its dead letter written.
		err := natsready.Await(ctx, c.e.nc)
		if err == nil {
			reply, err = c.e.nc.RequestMsgWithContext(ctx, msg)
		}
		cancel()
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			var wait time.Duration
			if s.firstNode > 0 && !s.opened {
				// A function deployed moments ago, and the open event (the
				// one that races the deploy; a connection may last hours):
				// its nodes may still be loading it. Poll every 250 ms at
				// most until the wait ends.
				if waitUntil.IsZero() {
					waitUntil = time.Now().Add(s.firstNode)
				}
				if left := time.Until(waitUntil); left > 0 {
					wait = min(backoff, 250*time.Millisecond, left)
				}
			}
			if wait == 0 && attempt < c.e.cfg.EventRetries {
				wait = backoff
			}
			if wait == 0 {
				return nil, &eventFailure{outcomeNoResponder, kindNoResponder, fmt.Errorf("%s event to %s: %w: %w", ev.kind, c.subject, protocol.ErrNoResponder, err)}
			}
			if !c.sleep(wait) {
				// The connection is closing (or the edge gave up on it):
				// nobody waits for this event any more, and there is
				// nothing to replay.
				return nil, &eventFailure{outcomeNoResponder, "", fmt.Errorf("%s event to %s: %w: %w: %w", ev.kind, c.subject, protocol.ErrNoResponder, errGivenUp, err)}
			}
			backoff *= 2
			continue
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			return nil, &eventFailure{outcomeTimeout, kindTimeout, fmt.Errorf("%s event to %s after %v: %w: %w", ev.kind, c.subject, c.e.cfg.EventTimeout, protocol.ErrTimeout, err)}
		default:
			return nil, &eventFailure{outcomeTransport, "", fmt.Errorf("%s event to %s: %w", ev.kind, c.subject, err)}
		}
	}

	if code := reply.Header.Get(headerServiceErrorCode); code != "" {
		return nil, &eventFailure{outcomeService, serviceErrorKind(code), fmt.Errorf("%s event to %s: service error %s: %s", ev.kind, c.subject, code, reply.Header.Get(headerServiceError))}
	}
	if err := protocol.DecodeResponse(reply.Data, &s.resp); err != nil {
		return nil, &eventFailure{outcomeDecode, kindDecode, fmt.Errorf("%s event reply from %s: %w", ev.kind, c.subject, err)}
	}
	// A reply must echo the event's request_id. One that does not answers
	// some other request (a confused or impersonating responder): its ops
	// are not this event's, so it is refused like any reply that cannot be
	// read, as the gateway refuses it.
	if s.resp.RequestID != req.RequestID {
		err := &protocol.DecodeError{Field: "request_id",
			Err: fmt.Errorf("reply is for request %s, not %s", s.resp.RequestID, req.RequestID)}
		return nil, &eventFailure{outcomeDecode, kindDecode, fmt.Errorf("%s event reply from %s: %w", ev.kind, c.subject, err)}
	}
	if s.resp.Newer() && !s.warned {
		s.warned = true
		c.log.Warn("ws event reply has a newer protocol version", "version", s.resp.Version)
	}
	if s.resp.Action == protocol.ActionError {
		return nil, &eventFailure{outcomePlugin, "", fmt.Errorf("%s event to %s: %w", ev.kind, c.subject, &protocol.PluginError{Message: s.resp.Error})}
	}
	ops, err := protocol.DecodeOps(s.resp.Data, s.ops[:0])
	if err != nil {
		return nil, &eventFailure{outcomeDecode, kindDecode, fmt.Errorf("%s event reply from %s: %w", ev.kind, c.subject, err)}
	}
	s.ops = ops
	return ops, nil
}

// sleep waits d before an event is sent again. It reports false, to give
// the event up, when the edge aborts first, when the edge closes the
// connection (its message events are dropped), or when the connection ends
// before its open event succeeded (a client gone during a deploy's
// first-node wait: no function has heard of it). The close event, and the
// messages of a client that closed after its open, are still delivered, so
// their wait goes on.
func (c *conn) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	stopped := c.stopped
	if c.ev.closing {
		stopped = nil
	}
	for {
		select {
		case <-t.C:
			return true
		case <-c.e.ctx.Done():
			return false
		case <-stopped:
			if c.cause == stopByEdge || !c.ev.opened {
				return false
			}
			stopped = nil
		}
	}
}

// apply carries out a reply's ops in order. Ops addressed to this
// connection are ignored once it is closing; broadcasts still go out (a
// close event may announce the departure to the room).
func (c *conn) apply(ops []protocol.Op) {
	s := &c.ev
	for i := range ops {
		op := &ops[i]
		switch op.Code {
		case protocol.OpWSSendText:
			c.send(websocket.MessageText, op.Value)
		case protocol.OpWSSendBinary:
			c.send(websocket.MessageBinary, op.Value)
		case protocol.OpWSClose:
			code := websocket.StatusCode(op.Num)
			if !sendableCode(code) {
				c.log.Warn("ws close op has an invalid code, using 1000", "close_code", op.Num)
				code = websocket.StatusNormalClosure
			}
			c.closeAfterSends(code, truncateReason(string(op.Value)))
		case protocol.OpWSJoinRoom:
			if s.closing || c.isStopped() {
				continue
			}
			if err := protocol.ValidateRoom(op.Key); err != nil {
				c.log.Warn("ws join op ignored", "room", op.Key, "error", err)
				continue
			}
			if _, ok := s.rooms[op.Key]; ok {
				continue
			}
			if len(s.rooms) >= c.e.cfg.MaxRooms {
				// Each room is a NATS subscription: a client of a function
				// that joins rooms on request must not multiply them.
				if c.allowLog(slog.LevelWarn, msgTooManyRooms, c.subject) {
					c.log.Warn(msgTooManyRooms, "room", op.Key, "max_rooms", c.e.cfg.MaxRooms)
				}
				continue
			}
			if err := c.e.rooms.join(c, op.Key); err != nil {
				c.log.Error("ws join failed", "room", op.Key, "error", err)
				continue
			}
			s.rooms[op.Key] = struct{}{}
		case protocol.OpWSLeaveRoom:
			if _, ok := s.rooms[op.Key]; !ok {
				continue
			}
			delete(s.rooms, op.Key)
			if err := c.e.rooms.leave(c, op.Key); err != nil {
				c.log.Error("ws leave failed", "room", op.Key, "error", err)
			}
		case protocol.OpWSBroadcastText, protocol.OpWSBroadcastBinary:
			if err := protocol.ValidateRoom(op.Key); err != nil {
				c.log.Warn("ws broadcast op ignored", "room", op.Key, "error", err)
				continue
			}
			typ := websocket.MessageText
			if op.Code == protocol.OpWSBroadcastBinary {
				typ = websocket.MessageBinary
			}
			var exclude string
			if op.Num&protocol.BroadcastExcludeSender != 0 {
				exclude = c.id
			}
			if err := c.e.rooms.publish(op.Key, typ, op.Value, exclude); err != nil {
				c.log.Error("ws broadcast failed", "room", op.Key, "error", err)
			}
		default:
			c.log.Debug("ws event reply op ignored", "op", op.Code)
		}
	}
}

// leaveAll removes the connection from every room it joined.
func (c *conn) leaveAll() {
	s := &c.ev
	for name := range s.rooms {
		if err := c.e.rooms.leave(c, name); err != nil {
			c.log.Error("ws leave failed", "room", name, "error", err)
		}
		delete(s.rooms, name)
	}
}

// truncateReason cuts a close reason to the 123 bytes a close frame holds,
// on a UTF-8 boundary.
func truncateReason(s string) string { return truncate(s, 123) }
