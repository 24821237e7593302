package ws

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/logsample"
	"github.com/nylon-functions/nylon/protocol"
)

// Edge terminates WebSocket connections and turns them into events for
// functions over NATS. It holds no function state: any node of the
// function's queue group may answer any event, and rooms fan out over NATS
// to every edge with members.
//
// An Edge is safe for concurrent use. The caller owns the NATS connection;
// Close does not close it.
type Edge struct {
	cfg    Config
	nc     *nats.Conn
	log    *slog.Logger
	m      *metrics
	rooms  *rooms
	accept websocket.AcceptOptions
	// sampler bounds the per-event WARN and ERROR lines (dead letters,
	// slow clients): a few a second per subject, and a count of the rest
	// (logsample).
	sampler *logsample.Sampler
	// timeoutHdr is cfg.EventTimeout as the Nylon-Timeout-Ms value every
	// event request carries.
	timeoutHdr string
	// dlqSink stores dead letters instead of a core publish when set
	// (WithDeadLetterSink).
	dlqSink func(*nats.Msg) bool

	// ctx is the parent of every connection's reads and event requests. It
	// is cancelled only when Close runs out of time, to abort what is left.
	ctx    context.Context
	cancel context.CancelFunc

	counter atomic.Uint64 // connection ids: {edge id}-{counter}

	mu     sync.Mutex
	conns  map[*conn]struct{}
	active int  // admitted connections, handshakes in progress included
	closed bool // no new connections
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Stats is a snapshot of an edge's state.
type Stats struct {
	Connections int // open connections (after the handshake)
	Rooms       int // rooms with a local member; one NATS subscription each
	Members     int // room memberships over all rooms
}

// New returns an edge that sends events on nc. cfg is validated once here
// (see Config for defaults); opts set the logger and metrics registry.
// Close releases the edge.
func New(cfg Config, nc *nats.Conn, opts ...Option) (*Edge, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nats connection: nil", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	autoQueueBytes := cfg.SendQueueBytes == 0
	cfg = cfg.withDefaults()
	if autoQueueBytes {
		// One event reply (at most max_payload) of sends must always fit,
		// or a client reading at full speed would be closed as slow.
		cfg.SendQueueBytes = max(cfg.SendQueueBytes, 2*nc.MaxPayload())
	}
	if cfg.EdgeID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
		cfg.EdgeID = hex.EncodeToString(b[:])
	}
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(o.registry)
	if err != nil {
		return nil, err
	}
	e := &Edge{
		cfg:        cfg,
		timeoutHdr: protocol.FormatTimeout(cfg.EventTimeout),
		nc:         nc,
		log:        o.logger.With("edge_id", cfg.EdgeID),
		dlqSink:    o.dlqSink,
		m:          m,
		conns:      make(map[*conn]struct{}),
		accept: websocket.AcceptOptions{
			OriginPatterns:     cfg.OriginPatterns,
			InsecureSkipVerify: cfg.InsecureSkipVerify,
		},
	}
	e.sampler = logsample.New(e.log, logsample.Config{})
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.rooms = newRooms(e)
	go e.watchdog()
	return e, nil
}

// watchdog drops connections whose frame write has taken longer than
// WriteTimeout (a client that stopped reading with full socket buffers),
// until Close has finished.
func (e *Edge) watchdog() {
	period := min(max(e.cfg.WriteTimeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	var stuck []*conn
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		deadline := time.Now().Add(-e.cfg.WriteTimeout).UnixNano()
		stuck = stuck[:0]
		e.mu.Lock()
		for c := range e.conns {
			if c.writeStuck(deadline) {
				stuck = append(stuck, c)
			}
		}
		e.mu.Unlock()
		for _, c := range stuck {
			if c.stop(websocket.StatusAbnormalClosure, "write timeout", stopAbort) {
				c.log.Info("ws write timed out, dropping", "write_timeout", e.cfg.WriteTimeout)
			}
			// Unblocks the stuck write; the writer then finishes.
			c.abort()
		}
	}
}

// ID returns the edge id, the prefix of its connection ids.
func (e *Edge) ID() string { return e.cfg.EdgeID }

// Config returns the edge's configuration with defaults applied.
func (e *Edge) Config() Config {
	c := e.cfg
	c.OriginPatterns = slices.Clone(c.OriginPatterns)
	return c
}

// Stats returns the current number of connections, rooms and memberships.
func (e *Edge) Stats() Stats {
	e.mu.Lock()
	n := len(e.conns)
	e.mu.Unlock()
	rooms, members := e.rooms.stats()
	return Stats{Connections: n, Rooms: rooms, Members: members}
}

// Handler returns an http.Handler that upgrades requests to WebSocket
// connections whose events go to function, with config as the invocation's
// config map (copied). See ServeFunction.
func (e *Edge) Handler(function string, config map[string]string) http.Handler {
	kvs := configKVs(config)
	err := protocol.ValidateName(function)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			e.badFunction(w, function, err)
			return
		}
		e.serve(w, r, function, kvs)
	})
}

// ServeFunction upgrades r to a WebSocket connection and serves it until it
// closes: open, every message and close become events on
// protocol.EventsSubject(prefix, function), and the ops of each reply are
// applied in order. It answers 503 before the upgrade when the edge is at
// MaxConnections or closing, and 403 for a foreign Origin.
//
// Route parameters set by a chi router are passed on as the request's params.
func (e *Edge) ServeFunction(w http.ResponseWriter, r *http.Request, function string, config map[string]string) {
	if err := protocol.ValidateName(function); err != nil {
		e.badFunction(w, function, err)
		return
	}
	e.serve(w, r, function, configKVs(config))
}

func (e *Edge) badFunction(w http.ResponseWriter, function string, err error) {
	e.log.Error("ws route has an invalid function name", "function", function, "error", err)
	http.Error(w, "websocket route misconfigured", http.StatusInternalServerError)
}

func (e *Edge) serve(w http.ResponseWriter, r *http.Request, function string, config []protocol.KV) {
	if reason := e.admit(); reason != "" {
		e.m.rejected.WithLabelValues(reason).Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "websocket edge "+reason, http.StatusServiceUnavailable)
		return
	}
	defer e.release()

	rec := &upgradeWriter{ResponseWriter: w}
	wsc, err := websocket.Accept(rec, r, &e.accept)
	if err != nil {
		reason := "handshake"
		if rec.status == http.StatusForbidden {
			reason = "origin"
		}
		e.m.rejected.WithLabelValues(reason).Inc()
		e.log.Debug("ws upgrade refused", "function", function, "reason", reason, "error", err)
		return
	}
	wsc.SetReadLimit(e.cfg.MaxMessageSize)

	n := e.counter.Add(1)
	c := newConn(e, wsc, rec.conn, e.cfg.EdgeID+"-"+strconv.FormatUint(n, 10), uint32(n), function, config, r)
	e.track(c)
	defer e.untrack(c)
	c.run()
}

// admit reserves a connection slot, or names why there is none.
func (e *Edge) admit() (reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return "closing"
	case e.active >= e.cfg.MaxConnections:
		return "max_connections"
	}
	e.active++
	e.wg.Add(1)
	return ""
}

func (e *Edge) release() {
	e.mu.Lock()
	e.active--
	e.mu.Unlock()
	e.wg.Done()
}

func (e *Edge) track(c *conn) {
	e.mu.Lock()
	e.conns[c] = struct{}{}
	closed := e.closed
	e.mu.Unlock()
	e.m.connections.Inc()
	if closed {
		// Close took its snapshot before this connection was tracked.
		c.stop(websocket.StatusGoingAway, "going away", stopByEdge)
		if e.ctx.Err() != nil {
			c.abort() // and has already run out of time
		}
	}
}

func (e *Edge) untrack(c *conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
	e.m.connections.Dec()
}

// Close stops accepting connections, closes every open one with 1001 (going
// away) after delivering its close event, and unsubscribes every room. It
// waits until the connections are gone or ctx is done; then it drops what is
// left without a close handshake and returns an error wrapping ctx's. Close
// is idempotent: later calls wait for the first and return its result.
func (e *Edge) Close(ctx context.Context) error {
	// Once.Do blocks concurrent callers until the first call is done, and
	// makes its closeErr visible to them.
	e.closeOnce.Do(func() { e.shutdown(ctx) })
	return e.closeErr
}

func (e *Edge) shutdown(ctx context.Context) {
	e.mu.Lock()
	e.closed = true
	conns := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()

	for _, c := range conns {
		c.stop(websocket.StatusGoingAway, "going away", stopByEdge)
	}
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		e.closeErr = fmt.Errorf("close ws edge[%s]: %w", e.cfg.EdgeID, ctx.Err())
		// Abort in-flight event requests and reads; every connection then
		// unwinds without waiting for its peer.
		e.cancel()
		e.mu.Lock()
		for c := range e.conns {
			c.abort()
		}
		e.mu.Unlock()
		<-done
	}
	e.cancel()
	if err := e.rooms.close(); err != nil && e.closeErr == nil {
		e.closeErr = fmt.Errorf("close ws edge[%s]: %w", e.cfg.EdgeID, err)
	}
	e.sampler.Flush() // the counts of lines suppressed lately
	e.log.Info("ws edge closed", "connections", len(conns))
}

// configKVs copies a config map into key order, as Invocation.Config wants.
func configKVs(m map[string]string) []protocol.KV {
	kvs := make([]protocol.KV, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, protocol.KV{Key: k, Value: v})
	}
	slices.SortFunc(kvs, func(a, b protocol.KV) int { return cmp.Compare(a.Key, b.Key) })
	return kvs
}

// upgradeWriter notes the status Accept answers a refused handshake with,
// and keeps the hijacked connection: closing it is the one way to unblock
// every read, write and close handshake of the WebSocket at once.
type upgradeWriter struct {
	http.ResponseWriter
	status int
	conn   net.Conn
}

func (u *upgradeWriter) WriteHeader(code int) {
	u.status = code
	u.ResponseWriter.WriteHeader(code)
}

func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	u.conn = conn
	return conn, brw, nil
}

func (u *upgradeWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }
