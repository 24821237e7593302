package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nylon-functions/nylon/protocol"
)

// exchange is one HTTP request's state as it runs through its route: the
// invocation context every phase call carries, the ops plugins asked for,
// and what logging needs afterwards. It lives on one goroutine: the
// handler's (the reverse proxy calls back on it too).
type exchange struct {
	g     *Gateway
	rt    *route
	req   *http.Request   // as routed: the access log's method, host, path
	ctx   context.Context // the client's request context
	rec   recorder        // a value: one allocation less per request
	meta  callMeta
	start time.Time

	inv     protocol.Invocation
	reqOps  []protocol.Op // request-header ops for the upstream, in order
	respOps []protocol.Op // response-header ops from request_filter Next

	originBody []byte // a function origin's body, for response_filter
	upStart    time.Time
	upErr      string
	bodyCut    bool // a streamed request body went over max_body_bytes
	upBody     upstreamBody
	hdr        headerTimer
	// refused is an upgrade (101) a response_filter turned into another
	// status: answered with that status instead of switching.
	refused *http.Response
	// upgraded: the upstream switched protocols and the proxy tunnels
	// the connection, writing the 101 on the hijacked connection itself
	// (the recorder never sees it).
	upgraded bool
	// trustedPeer: the TCP peer is a trusted proxy, so the inbound
	// X-Forwarded-* go upstream (origin.go).
	trustedPeer bool

	// failErr is what failed the request, logged once by finish with
	// problemID. problemID is the request_id the client was given in a
	// problem: a failure's, or a 426's, which is no failure.
	failErr   error
	problemID string
}

// callMeta is what a phase call logs and sends besides the invocation.
type callMeta struct {
	session uint32
	trace   string
	route   string
	// id is the request_id of the request's first phase call (invoke
	// sets it), the access log's request_id of a request that did not
	// fail; zero before any call.
	id protocol.RequestID
}

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

var (
	errBodyTooLarge = errors.New("request body too large")
	errBadRequest   = errors.New("bad request")
)

// serve runs one request through rt.
func (g *Gateway) serve(rt *route, w http.ResponseWriter, r *http.Request) {
	ex := &exchange{
		g:     g,
		rt:    rt,
		req:   r,
		ctx:   r.Context(),
		rec:   recorder{ResponseWriter: w, snap: len(rt.loggers) > 0},
		start: time.Now(),
		meta: callMeta{
			session: g.session.Add(1),
			trace:   nextTraceparent(r.Header.Get(headerTraceparent)),
			route:   rt.pattern,
		},
	}
	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler && ex.rec.status == 0 {
			// A panic before any answer (a WithWebSocket handler's, a
			// bug's): net/http closes the connection. A server error,
			// not a client that left (499), for the metrics and the
			// access line alike.
			ex.rec.status = http.StatusInternalServerError
		}
		ex.finish(v != nil)
		if v != nil {
			panic(v) // net/http aborts the stream (and logs any other panic)
		}
	}()
	if rt.websocket && isUpgrade(r) && g.opts.ws != nil {
		ri := ex.routeInfo(r)
		ex.inv.Request.ClientIP = ri.ClientIP // the access line's: resolved once
		g.opts.ws.ServeHTTP(&ex.rec, r.WithContext(context.WithValue(r.Context(), routeInfoKey{}, ri)))
		return
	}
	if rt.origin != nil && !rt.origin.t.phases.Has(protocol.PhaseRequestFilter) {
		ex.problemID = protocol.NewRequestID().String()
		writeProblem(&ex.rec, Problem{Type: ProblemUpgradeRequired, Title: "Upgrade Required", Status: http.StatusUpgradeRequired,
			Detail: "this route answers WebSocket connections only", RequestID: ex.problemID})
		return
	}
	body, err := ex.readRequest(r)
	if err != nil {
		ex.fail(err)
		return
	}
	ctx := r.Context()
	for _, h := range rt.reqFilters {
		if !h.t.serves(protocol.PhaseRequestFilter) {
			continue
		}
		rep, err := ex.call(ctx, h, protocol.PhaseRequestFilter)
		if err != nil {
			if ex.proceed(err, h, protocol.PhaseRequestFilter) {
				continue
			}
			ex.fail(err)
			return
		}
		if rep.action == protocol.ActionEnd {
			ex.respondOps(rep.ops)
			return
		}
		ex.collectNextOps(h, rep.ops)
	}
	ex.upStart = time.Now()
	if rt.upstream == nil {
		ex.serveFunction()
		return
	}
	outCtx := context.WithValue(ctx, exchangeKey{}, ex)
	if d := rt.headerTimeout; d > 0 {
		var stop func()
		outCtx, stop = ex.hdr.arm(outCtx, d)
		defer stop()
	}
	out := r.WithContext(outCtx)
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
	} else if r.Body != nil && r.Body != http.NoBody {
		out.Body = &limitedBody{rc: r.Body, left: rt.maxBody, ex: ex}
	}
	rt.proxy.ServeHTTP(&ex.rec, out)
}

// readRequest fills the invocation's request and returns the buffered body
// when some phase reads it (nil when it is streamed to the upstream).
func (ex *exchange) readRequest(r *http.Request) ([]byte, error) {
	rt := ex.rt
	if r.ContentLength > rt.maxBody {
		return nil, errBodyTooLarge
	}
	var body []byte
	if rt.needBody && r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = readLimited(r.Body, rt.maxBody, r.ContentLength)
		if err != nil {
			return nil, err
		}
	}
	q := &ex.inv.Request
	q.Method = r.Method
	q.ClientIP, ex.trustedPeer = ex.g.clientIP(r)
	q.Scheme = clientScheme(r, ex.trustedPeer)
	q.Host = r.Host
	q.Path = r.URL.Path
	q.Query = r.URL.RawQuery
	q.Headers = toHeaders(r.Header, q.Headers[:0])
	q.Body = body
	q.Timestamp = uint64(ex.start.UnixMilli())
	if rc := chi.RouteContext(r.Context()); rc != nil {
		for i, k := range rc.URLParams.Keys {
			if k == "" {
				continue
			}
			q.Params = append(q.Params, protocol.KV{Key: k, Value: rc.URLParams.Values[i]})
		}
	}
	return body, nil
}

// readLimited reads all of body, failing with errBodyTooLarge past limit.
func readLimited(body io.Reader, limit, hint int64) ([]byte, error) {
	size := 512
	if hint > 0 && hint <= limit {
		size = int(hint) + 1 // +1 so ReadFrom sees EOF without growing
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, err := buf.ReadFrom(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %w", errBadRequest, err)
	}
	if n > limit {
		return nil, errBodyTooLarge
	}
	return buf.Bytes(), nil
}

// limitedBody streams a request body upstream, cutting it at the route's
// limit; the cut is remembered so the proxy error becomes a 413.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	ex   *exchange
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		b.ex.bodyCut = true
		return 0, errBodyTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// call invokes phase ph of h with the current invocation.
func (ex *exchange) call(ctx context.Context, h *hop, ph protocol.Phase) (reply, error) {
	ex.inv.Config = h.config
	bp := ex.g.wire.get()
	defer ex.g.wire.put(bp)
	*bp = protocol.AppendInvocation(*bp, &ex.inv)
	return ex.g.invoke(ctx, h.t, ph, *bp, &ex.meta)
}

// proceed decides, after a failed call, whether the request goes on without
// the plugin: shed calls and phases nobody serves are skipped; otherwise
// on_error decides (continue goes on; end, and retry once its retries are
// spent, fail the request).
func (ex *exchange) proceed(err error, h *hop, ph protocol.Phase) bool {
	if errors.Is(err, errShed) || errors.Is(err, errUnserved) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if h.t.policy[ph].OnError == OnErrorContinue {
		// The request goes on: this is the failure's only line.
		ex.g.logFailure(ex.ctx, failure{msg: msgPluginSkipped, meta: &ex.meta, plugin: h.t.name, err: err})
		return true
	}
	if ex.failErr == nil {
		// A response_body_filter failure aborts the response and reaches
		// no fail: finish logs it from here.
		ex.failErr = err
	}
	return false
}

// fail answers err as a problem (or nothing, when the client is gone).
func (ex *exchange) fail(err error) {
	if ex.ctx.Err() != nil {
		// The client left: nobody reads an answer.
		ex.rec.status = statusClientClosed
		return
	}
	p := problemFor(err, ex.rt.maxBody)
	if p.RequestID == "" {
		p.RequestID = protocol.NewRequestID().String()
	}
	ex.failErr, ex.problemID = err, p.RequestID
	writeProblem(&ex.rec, p)
}

// statusClientClosed records requests whose client left before an answer.
const statusClientClosed = 499

// respondOps answers a request_filter End: status, headers and body from
// the ops, over the response-header ops of earlier plugins.
func (ex *exchange) respondOps(ops []protocol.Op) {
	h := ex.rec.Header()
	applyResponseHeaderOps(h, ex.respOps, ex.g.opLog)
	status, body := applyEndOps(h, ops, ex.g.opLog)
	writeBody(&ex.rec, ex.inv.Request.Method, status, body)
}

// applyEndOps applies the header ops of an End reply to h and returns the
// status (200 unless an op sets one) and the body the ops set (see
// responseBody).
func applyEndOps(h http.Header, ops []protocol.Op, log *slog.Logger) (status int, body []byte) {
	status = http.StatusOK
	var b responseBody
	for i := range ops {
		op := &ops[i]
		switch {
		case protocol.IsResponseHeaderOp(op.Code):
			applyResponseHeaderOps(h, ops[i:i+1], log)
		case op.Code == protocol.OpSetResponseStatus:
			if protocol.ValidStatus(op.Num) {
				status = int(op.Num)
			}
		default:
			b.apply(op)
		}
	}
	return status, b.body
}

// writeBody writes a complete response with its Content-Length.
func writeBody(w http.ResponseWriter, method string, status int, body []byte) {
	h := w.Header()
	h.Del("Transfer-Encoding")
	if bodyAllowed(status) {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	} else {
		h.Del("Content-Length")
		body = nil
	}
	w.WriteHeader(status)
	if len(body) > 0 && method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// filtersResponse reports whether a response with status goes through a
// response phase: response_filter always, response_body_filter when the
// response has a body.
func (ex *exchange) filtersResponse(status int) bool {
	return len(ex.rt.respFilters) > 0 || len(ex.rt.bodyFilters) > 0 && ex.hasBody(status)
}

// hasBody reports whether the response to this request carries a body.
func (ex *exchange) hasBody(status int) bool {
	return bodyAllowed(status) && ex.inv.Request.Method != http.MethodHead
}

// bodyAllowed reports whether a response with status may carry a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// collectNextOps keeps a request_filter Next's ops: request-header ops
// change the request the upstream (and later plugins) see, response-header
// ops wait for the response. Other ops do not apply to a Next and are
// ignored.
func (ex *exchange) collectNextOps(h *hop, ops []protocol.Op) {
	for i := range ops {
		op := ops[i]
		switch {
		case protocol.IsRequestHeaderOp(op.Code):
			if !applyInvocationHeaderOp(&ex.inv.Request, &op, ex.g.opLog) {
				continue
			}
			ex.reqOps = append(ex.reqOps, op)
		case protocol.IsResponseHeaderOp(op.Code):
			ex.respOps = append(ex.respOps, op)
		default:
			// Enabled first: the arguments would be boxed (allocated)
			// even with debug logging off.
			if ex.g.log.Enabled(ex.ctx, slog.LevelDebug) {
				ex.g.log.Debug("gateway: op ignored on request_filter Next", "plugin", h.t.name, "op", op.Code)
			}
		}
	}
}

// finish records metrics, writes the access line and hands the request to
// the logging phase. It runs once per request, when the handler returns:
// after the last byte of the response (the last chunk of a streamed body),
// or when an upgraded connection ends.
func (ex *exchange) finish(aborted bool) {
	rt := ex.rt
	status := ex.rec.status
	if status == 0 {
		switch {
		case ex.upgraded:
			status = http.StatusSwitchingProtocols
		case aborted:
			status = statusClientClosed
		default:
			status = http.StatusOK // a handler that wrote nothing: net/http answers 200
		}
	}
	elapsed := time.Since(ex.start)
	rt.requests.inc(status)
	rt.duration.Observe(elapsed.Seconds())
	if ex.failErr != nil {
		// One line per failed request, however many attempts, dead
		// letters and phases it took.
		ex.g.logFailure(ex.ctx, failure{msg: msgRequestFailed, meta: &ex.meta, status: status, aborted: aborted,
			requestID: ex.problemID, err: ex.failErr})
	}
	if ex.g.opts.access != nil {
		// Off, this test is all the access log costs a request.
		ex.logAccess(status, elapsed)
	}
	if len(rt.loggers) == 0 {
		return
	}
	if ex.upErr == "" && aborted {
		ex.upErr = "response aborted"
	}
	resp := protocol.HTTPResponse{
		Status:     status,
		Headers:    ex.rec.headers,
		DurationMs: uint64(elapsed.Milliseconds()),
		Error:      ex.upErr,
	}
	ex.inv.Response = &resp
	if len(ex.inv.Request.Body) > maxLoggedBody {
		ex.inv.Request.Body = nil // logging is off the request path; do not queue large bodies
	}
	for _, h := range rt.loggers {
		if !h.t.serves(protocol.PhaseLogging) {
			continue
		}
		ex.inv.Config = h.config
		data := protocol.AppendInvocation(nil, &ex.inv)
		if !ex.g.logs.push(logJob{t: h.t, meta: ex.meta, data: data}) {
			ex.g.met.logDropped.Inc()
		}
	}
}

func (ex *exchange) routeInfo(r *http.Request) RouteInfo {
	ri := RouteInfo{Pattern: ex.rt.pattern, Config: ex.rt.config}
	var trusted bool
	ri.ClientIP, trusted = ex.g.clientIP(r)
	ri.Scheme = clientScheme(r, trusted)
	if o := ex.rt.origin; o != nil {
		ri.Function = o.t.function
		if o.t.isNew(time.Now()) {
			ri.FirstNodeWait = ex.g.opts.firstNodeWait
		}
	}
	if rc := chi.RouteContext(r.Context()); rc != nil && len(rc.URLParams.Keys) > 0 {
		ri.Params = make(map[string]string, len(rc.URLParams.Keys))
		for i, k := range rc.URLParams.Keys {
			ri.Params[k] = rc.URLParams.Values[i]
		}
	}
	return ri
}

func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && r.Header.Get("Upgrade") != ""
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// toHeaders flattens h into dst, names sorted (http.Header keeps no arrival
// order across names), each name's values in order.
func toHeaders(h http.Header, dst []protocol.Header) []protocol.Header {
	var arr [32]string // the usual few names sort without an allocation
	names := arr[:0]
	n := 0
	for k, vs := range h {
		names = append(names, k)
		n += len(vs)
	}
	slices.Sort(names)
	dst = slices.Grow(dst, n)
	for _, k := range names {
		for _, v := range h[k] {
			dst = append(dst, protocol.Header{Name: k, Value: v})
		}
	}
	return dst
}

// recorder remembers the status (and, when logging needs them, the
// headers) a response was written with, and the body bytes written.
type recorder struct {
	http.ResponseWriter
	status  int
	snap    bool
	headers []protocol.Header
	bytes   int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
		if r.snap {
			r.headers = toHeaders(r.Header(), nil)
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush supports streaming through the recorder.
func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection (hijack for
// upgrades, deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
