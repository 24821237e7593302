package ws

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/protocol"
)

// stopCause says who ended a connection, which decides what still happens.
type stopCause uint8

const (
	// stopByClient: the client sent a close frame. Messages it sent before
	// are still delivered as events, then the close event.
	stopByClient stopCause = iota + 1
	// stopByEdge: the edge closes with a handshake (a 303 op, a handler
	// failure, a slow client, shutdown). Queued message events are dropped.
	stopByEdge
	// stopAbort: the transport is gone or the peer is dead; no handshake.
	// Messages already received are still delivered.
	stopAbort
)

// outMsg is one entry of a connection's send queue.
type outMsg struct {
	typ    websocket.MessageType
	data   []byte
	close  bool // a 303 op: close after the messages queued before it
	code   websocket.StatusCode
	reason string
}

// inEvent is one entry of a connection's event queue.
type inEvent struct {
	kind    protocol.WSEventKind
	payload []byte
}

// conn is one client connection. Three goroutines serve it: the HTTP
// handler's goroutine reads frames (run, readLoop), eventLoop sends one
// event at a time to the function and applies the replies' ops, writeLoop
// drains the bounded send queue; the pinger's timer, when enabled, keeps
// it alive with a goroutine only while a ping is under way.
type conn struct {
	e        *Edge
	ws       *websocket.Conn
	raw      net.Conn // the hijacked connection under ws
	id       string
	session  uint32
	function string
	subject  string
	// dlqSubject receives events that failed for a transport reason.
	dlqSubject string
	log        *slog.Logger

	// The send queue: at most SendQueue messages, drained by writeLoop.
	// A slice queue rather than a channel, which would preallocate all
	// SendQueue entries for every connection, idle ones included.
	outMu sync.Mutex
	out   fifo[outMsg] // guarded by outMu
	// outWake (capacity 1) wakes writeLoop when a message is queued.
	outWake chan struct{}
	// outBytes is the payload bytes in out plus the write in progress,
	// bounded by SendQueueBytes.
	outBytes atomic.Int64
	events   eventQueue  // bounded by EventQueue
	closeReq atomic.Bool // a close op is queued: later sends are dropped

	stopOnce sync.Once
	stopped  chan struct{} // closed by the first stop
	// Set once by the first stop, read only after stopped is closed.
	code   websocket.StatusCode
	reason string
	cause  stopCause

	// writeStart is when the write in progress began (Unix nanos), 0 when
	// the writer is idle; the edge's watchdog aborts writes that take
	// longer than WriteTimeout. A context deadline per write would cost a
	// timer and several allocations per message.
	writeStart atomic.Int64

	writerDone chan struct{}
	eventsDone chan struct{}

	// pinger runs ping every PingInterval (nil when keep-alive is off): a
	// timer rather than a goroutine per connection waiting on a ticker.
	pinger *time.Timer

	// Owned by eventLoop.
	ev eventState
}

func newConn(e *Edge, wsc *websocket.Conn, raw net.Conn, id string, session uint32, function string, config []protocol.KV, r *http.Request) *conn {
	c := &conn{
		e:          e,
		ws:         wsc,
		raw:        raw,
		id:         id,
		session:    session,
		function:   function,
		subject:    protocol.EventsSubject(e.cfg.SubjectPrefix, function),
		dlqSubject: protocol.DLQSubject(e.cfg.SubjectPrefix, function, protocol.PhaseEvent),
		log:        e.log.With("connection_id", id, "function", function, "session_id", session),
		outWake:    make(chan struct{}, 1),
		stopped:    make(chan struct{}),
		writerDone: make(chan struct{}),
		eventsDone: make(chan struct{}),
	}
	c.events.init(e.cfg.EventQueue)
	c.ev.init(c, r, config)
	return c
}

// run serves the connection until it is closed and its close event has
// been handled. It runs on the HTTP handler's goroutine.
func (c *conn) run() {
	c.log.Debug("ws connection open")
	go c.writeLoop()
	go c.eventLoop()
	if c.e.cfg.PingInterval > 0 {
		// Armed once the field is set: ping reads it to re-arm.
		c.pinger = time.AfterFunc(time.Duration(math.MaxInt64), c.ping)
		c.pinger.Reset(c.e.cfg.PingInterval)
	}
	c.events.put(inEvent{kind: protocol.WSOpen}, nil) // the queue is empty: never blocks
	c.readLoop()
	if c.pinger != nil {
		// A ping already running ends with the connection and re-arms
		// nothing: it sees the connection stopped.
		c.pinger.Stop()
	}
	// Reading ended, so the connection is stopped; the close event is last.
	c.events.put(inEvent{kind: protocol.WSClose}, nil)
	c.events.close()
	<-c.eventsDone
	<-c.writerDone
	c.log.Debug("ws connection closed", "close_code", int(c.code), "close_reason", c.reason)
}

func (c *conn) readLoop() {
	for {
		// No deadline: a cancellable context would cost a timer per frame.
		// Shutdown unblocks the read by closing the connection.
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.readFailed(err)
			return
		}
		c.e.m.messagesIn.Inc()
		kind := protocol.WSText
		if typ == websocket.MessageBinary {
			kind = protocol.WSBinary
		} else if !utf8.Valid(data) {
			// RFC 6455 8.1: text that is not UTF-8 fails the connection.
			// The library does not check; passed on, a function relaying
			// it would make every browser in the room drop its connection.
			c.stop(websocket.StatusInvalidFramePayloadData, "invalid UTF-8", stopByEdge)
			continue
		}
		// Once the connection is stopped a full queue no longer holds
		// reading up: the event is dropped, and reading goes on until the
		// handshake ends. (eventLoop drops the message events of a
		// connection the edge closes anyway.)
		c.events.put(inEvent{kind: kind, payload: data}, c.stopped)
	}
}

// readFailed records why reading stopped; the close event reports it.
func (c *conn) readFailed(err error) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		// The library has already answered the client's close frame.
		c.stop(ce.Code, ce.Reason, stopByClient)
	case errors.Is(err, websocket.ErrMessageTooBig):
		// The library has already sent 1009; Close completes the handshake.
		c.stop(websocket.StatusMessageTooBig, "message too big", stopByEdge)
	default:
		c.stop(websocket.StatusAbnormalClosure, "", stopAbort)
	}
}

// stop ends the connection once; the first caller's code, reason and cause
// win. It reports whether this call was the first.
func (c *conn) stop(code websocket.StatusCode, reason string, cause stopCause) bool {
	first := false
	c.stopOnce.Do(func() {
		first = true
		c.code, c.reason, c.cause = code, reason, cause
		close(c.stopped)
	})
	return first
}

// closedByEdge reports whether the edge decided to close the connection.
// Its queued events are then dropped; after a client's close or a broken
// transport they are still delivered, since they were received.
func (c *conn) closedByEdge() bool {
	return c.isStopped() && c.cause == stopByEdge
}

func (c *conn) isStopped() bool {
	select {
	case <-c.stopped:
		return true
	default:
		return false
	}
}

// send queues a message for the client without blocking. A full queue
// means the client reads slower than it is sent to: it is closed with 1008
// so that it never holds up a room or the NATS callback delivering to it.
func (c *conn) send(typ websocket.MessageType, data []byte) {
	c.enqueue(outMsg{typ: typ, data: data})
}

func (c *conn) enqueue(m outMsg) {
	if c.closeReq.Load() || c.isStopped() {
		return
	}
	// Bytes as well as messages: SendQueue messages of up to max_payload
	// each would let one client that stops reading pin hundreds of MiB. A
	// message always fits an empty queue, whatever its size.
	n := int64(len(m.data))
	if total := c.outBytes.Add(n); total > n && total > c.e.cfg.SendQueueBytes {
		c.outBytes.Add(-n)
		c.slow()
		return
	}
	c.outMu.Lock()
	full := c.out.len() >= c.e.cfg.SendQueue
	if !full {
		c.out.push(m)
	}
	c.outMu.Unlock()
	if full {
		c.outBytes.Add(-n)
		c.slow()
		return
	}
	wake(c.outWake)
}

// nextOut takes the oldest queued message, if any.
func (c *conn) nextOut() (outMsg, bool) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.out.len() == 0 {
		return outMsg{}, false
	}
	return c.out.pop(), true
}

// slow closes a client that reads slower than it is sent to.
func (c *conn) slow() {
	if c.stop(websocket.StatusPolicyViolation, "slow consumer", stopByEdge) {
		c.e.m.slowClosed.Inc()
		if c.allowLog(slog.LevelWarn, msgSlowClient, c.subject) {
			c.log.Warn(msgSlowClient, "send_queue", c.e.cfg.SendQueue, "send_queue_bytes", c.e.cfg.SendQueueBytes)
		}
	}
}

// closeAfterSends queues a close behind the messages already queued.
func (c *conn) closeAfterSends(code websocket.StatusCode, reason string) {
	c.enqueue(outMsg{close: true, code: code, reason: reason})
	c.closeReq.Store(true)
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	for {
		// A stop wins over queued messages: a slow or failed client gets
		// its close frame next, not the rest of its backlog.
		if c.isStopped() {
			c.finish()
			return
		}
		m, ok := c.nextOut()
		if !ok {
			select {
			case <-c.stopped:
			case <-c.outWake:
			}
			continue
		}
		if m.close {
			c.stop(m.code, m.reason, stopByEdge)
			c.finish()
			return
		}
		c.writeStart.Store(time.Now().UnixNano())
		err := c.ws.Write(context.Background(), m.typ, m.data)
		c.writeStart.Store(0)
		c.outBytes.Add(-int64(len(m.data)))
		if err != nil {
			c.stop(websocket.StatusAbnormalClosure, "write failed", stopAbort)
			c.log.Debug("ws write failed", "error", err)
			c.finish()
			return
		}
		c.e.m.messagesOut.Inc()
	}
}

// finish closes the WebSocket as the stop decided. With a handshake this
// waits for the client's answer (at most ~10s, the library's bound).
func (c *conn) finish() {
	if c.cause == stopAbort {
		_ = c.ws.CloseNow()
		return
	}
	code := c.code
	if !sendableCode(code) {
		code = websocket.StatusNormalClosure
	}
	_ = c.ws.Close(code, c.reason)
}

// ping pings the client once, on the pinger's goroutine, and arms the next
// ping PingInterval after this one began, as a ticker would.
func (c *conn) ping() {
	if c.isStopped() {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.e.ctx, c.e.cfg.PingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		if c.stop(websocket.StatusAbnormalClosure, "ping timeout", stopAbort) {
			c.log.Info("ws peer did not answer ping, dropping", "error", err)
		}
		return
	}
	if c.isStopped() {
		return
	}
	c.pinger.Reset(c.e.cfg.PingInterval - time.Since(start))
}

// sendableCode reports whether code may be sent in a close frame (RFC 6455
// 7.4): 1000-1003, 1007-1014, 3000-4999.
func sendableCode(code websocket.StatusCode) bool { return protocol.ValidCloseCode(int64(code)) }

// abort closes the transport under the WebSocket: every read, write and
// close handshake in progress fails at once. The library's CloseNow cannot
// do that while its own Close is waiting for the peer.
func (c *conn) abort() {
	if c.raw != nil {
		_ = c.raw.Close()
	}
}

// writeStuck reports whether a write has been in progress since before
// deadline (Unix nanos).
func (c *conn) writeStuck(deadline int64) bool {
	start := c.writeStart.Load()
	return start != 0 && start < deadline
}

// eventHeader builds the headers of an event request. The header is
// reused across a connection's events (one in flight at a time).
func (c *conn) eventHeader(h nats.Header, traceparent string) nats.Header {
	if h == nil {
		h = nats.Header{}
	}
	h[protocol.HeaderTraceparent] = append(h[protocol.HeaderTraceparent][:0], traceparent)
	h[protocol.HeaderEnv] = append(h[protocol.HeaderEnv][:0], c.e.cfg.Env)
	// How long the edge waits for the reply, so that the node does not
	// start an event whose wait is over.
	h[protocol.HeaderTimeout] = append(h[protocol.HeaderTimeout][:0], c.e.timeoutHdr)
	return h
}
