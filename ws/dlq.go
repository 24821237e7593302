package ws

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/logsample"
	"github.com/nylon-functions/nylon/protocol"
)

// Dead-letter headers. The names and kinds are the gateway's, so one
// dead-letter stream ({prefix}.dlq.>) reads the same for both edges.
const (
	HeaderErrorKind    = "Nylon-Error-Kind"    // Timeout, NoResponder, Decode, Overloaded, Internal
	HeaderError        = "Nylon-Error"         // the error, truncated to 256 bytes
	HeaderAttempts     = "Nylon-Attempts"      // attempts made
	HeaderRequestID    = "Nylon-Request-Id"    // the event's request_id, as a UUID
	HeaderConnectionID = "Nylon-Connection-Id" // the connection the event belonged to
)

// Dead-letter error kinds.
const (
	kindTimeout     = string(protocol.KindTimeout)
	kindNoResponder = string(protocol.KindNoResponder)
	kindDecode      = string(protocol.KindDecode)
	kindOverloaded  = "Overloaded"
	kindInternal    = "Internal"
)

// serviceErrorKind maps a micro error code to a dead-letter kind; a request
// refused as too large would be refused again, so it is not dead-lettered.
func serviceErrorKind(code string) string {
	switch code {
	case strconv.Itoa(protocol.ServiceErrDecode):
		return kindDecode
	case strconv.Itoa(protocol.ServiceErrTooLarge):
		return ""
	case strconv.Itoa(protocol.ServiceErrOverloaded):
		return kindOverloaded
	case strconv.Itoa(protocol.ServiceErrTimeout):
		return kindTimeout
	}
	return kindInternal
}

// deadLetter publishes an event that failed for a transport reason to
// protocol.DLQSubject(prefix, function, PhaseEvent), where a JetStream
// stream keeps it for inspection and replay. The data is the request as it
// was sent. With a dead-letter sink (WithDeadLetterSink) the sink stores
// it; otherwise it is a core publish, as the connection must not wait for
// a stream ack, and one the server drops (no stream leader) goes unseen.
func (c *conn) deadLetter(f *eventFailure) {
	if f.kind == "" || c.e.cfg.DisableDeadLetters {
		return
	}
	s := &c.ev
	msg := &nats.Msg{
		Subject: c.dlqSubject,
		Data:    s.reqBuf,
		Header: nats.Header{
			HeaderErrorKind:            {f.kind},
			HeaderError:                {truncate(f.err.Error(), 256)},
			HeaderAttempts:             {strconv.Itoa(s.attempts)},
			HeaderRequestID:            {s.requestID.String()},
			HeaderConnectionID:         {c.id},
			protocol.HeaderTraceparent: {s.traceparent},
			protocol.HeaderEnv:         {c.e.cfg.Env},
		},
	}
	if sink := c.e.dlqSink; sink != nil {
		// reqBuf is the next event's request buffer; the sink keeps msg.
		msg.Data = bytes.Clone(s.reqBuf)
		if !sink(msg) {
			c.e.m.dlqLost.Inc()
			if c.allowLog(slog.LevelError, msgDeadLetterLost, c.dlqSubject) {
				c.log.Error(msgDeadLetterLost, "subject", c.dlqSubject, "request_id", s.requestID.String(),
					"error", "dead-letter sink refused it (queue full or closed, or no dead-letter stream for the subject)")
			}
			return
		}
	} else if err := c.e.nc.PublishMsg(msg); err != nil {
		c.e.m.dlqLost.Inc()
		if c.allowLog(slog.LevelError, msgDeadLetterLost, c.dlqSubject) {
			c.log.Error(msgDeadLetterLost, "subject", c.dlqSubject, "request_id", s.requestID.String(), "error", err)
		}
		return
	}
	c.e.m.deadLetters.Inc()
	if c.allowLog(slog.LevelWarn, msgDeadLettered, c.dlqSubject) {
		c.log.Warn(msgDeadLettered, "subject", c.dlqSubject, "request_id", s.requestID.String(),
			"kind", f.kind, "attempts", s.attempts, "traceparent", s.traceparent)
	}
}

// Messages of the per-event lines, sampled by allowLog.
const (
	msgDeadLettered   = "ws event dead-lettered"
	msgDeadLetterLost = "ws dead letter lost"
	msgSlowClient     = "ws client too slow, closing"
	msgEventFailed    = "ws event failed, closing connection"
	msgTooManyRooms   = "ws join op skipped: connection at max_rooms"
)

// allowLog reports whether a per-event line may be written: a few a second
// per message and subject, the rest counted and summed up
// in one edge line per interval ("suppressed=N"), so that a node down
// under thousands of connections cannot flood the edge's log. The metrics
// count every one.
func (c *conn) allowLog(level slog.Level, msg, subject string) bool {
	return c.e.sampler.Allow(context.Background(), level, logsample.KeyOf(msg, "subject", subject))
}

// truncate cuts s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
