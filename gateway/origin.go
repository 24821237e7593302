package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nylon-functions/nylon/protocol"
)

var (
	errUpstream        = errors.New("upstream unavailable")
	errUpstreamTimeout = errors.New("upstream timeout")
	errUpgradeRefused  = errors.New("upgrade refused by a response_filter")
)

// newProxy builds the reverse proxy of an upstream route; the response
// phases run in its ModifyResponse, before anything is written.
func (g *Gateway) newProxy(rt *route) *httputil.ReverseProxy {
	if rt.upstream == nil {
		return nil
	}
	return &httputil.ReverseProxy{
		Transport: g.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			ex := exchangeOf(pr.In.Context())
			if rt.stripPrefix != "" {
				pr.Out.URL.Path = stripPrefix(pr.Out.URL.Path, rt.stripPrefix)
				if pr.Out.URL.RawPath != "" {
					pr.Out.URL.RawPath = stripPrefix(pr.Out.URL.RawPath, rt.stripPrefix)
				}
			}
			pr.SetURL(rt.upstream)
			setXForwarded(pr, ex.trustedPeer)
			if headerHasToken(pr.Out.Header, "Upgrade", "h2c") {
				// Not passed on (RFC 9113 deprecates it; Envoy strips
				// it too): an upstream that switches to HTTP/2 would
				// take any request the client sends on the connection,
				// past the routes and their plugins. The upstream gets
				// a plain request.
				pr.Out.Header.Del("Upgrade")
				pr.Out.Header.Del("Connection")
			}
			applyRequestHeaderOps(pr.Out.Header, ex.reqOps)
			pr.Out.Header.Set(headerTraceparent, ex.meta.trace)
		},
		ModifyResponse: func(resp *http.Response) error {
			ex := exchangeOf(resp.Request.Context())
			ex.hdr.arrived()
			upgrade := resp.StatusCode == http.StatusSwitchingProtocols
			if !upgrade && !protocol.ValidStatus(int64(resp.StatusCode)) {
				// net/http would panic writing a status under 100, and
				// send one over 599 that no client knows: a broken
				// upstream, 502 as nginx answers it.
				return fmt.Errorf("invalid response status %d", resp.StatusCode)
			}
			if !upgrade && resp.Body != nil && resp.Body != http.NoBody {
				// Not an upgrade's: the proxy needs that one's body
				// to be the connection.
				ex.upBody = upstreamBody{rc: resp.Body, ex: ex}
				resp.Body = &ex.upBody
			}
			if err := ex.responsePhases(resp); err != nil {
				return err
			}
			if upgrade && resp.StatusCode != http.StatusSwitchingProtocols {
				// A response_filter refused the upgrade: the proxy
				// would write its status and switch all the same.
				// The error makes it close the upstream connection;
				// ErrorHandler answers with the filter's response.
				ex.refused = resp
				return errUpgradeRefused
			}
			ex.upgraded = upgrade
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			ex := exchangeOf(r.Context())
			if errors.Is(err, errUpgradeRefused) {
				ex.answerRefusedUpgrade()
				return
			}
			ex.originFailed(err)
		},
		BufferPool: &g.bufs,
		// The proxy logs a body it could not read to the end; upstreamBody
		// gives finish that failure for its one line, so the proxy's own
		// is detail.
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// setXForwarded sets the X-Forwarded-* headers of the upstream request.
// The proxy has removed the inbound ones, and Forwarded (RFC 7239), before
// Rewrite. From an untrusted peer they stay dropped: X-Forwarded-For is
// the peer alone, Proto and Host this hop's. From a trusted proxy the
// chain goes on, as nginx's $proxy_add_x_forwarded_for: the inbound
// X-Forwarded-For with the peer appended, and the inbound Proto and Host
// (the balancer's view of the client's scheme and host) where it sent
// them. Forwarded is never passed on: the gateway neither reads nor
// appends to it, and a client's would go upstream unchecked.
func setXForwarded(pr *httputil.ProxyRequest, trustedPeer bool) {
	dropForwardedLookalikes(pr.Out.Header)
	if !trustedPeer {
		pr.SetXForwarded()
		return
	}
	in := pr.In.Header
	// SetXForwarded appends the peer to what the outbound header holds.
	pr.Out.Header["X-Forwarded-For"] = in["X-Forwarded-For"]
	pr.SetXForwarded()
	for _, k := range [...]string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := in[k]; len(v) > 0 {
			pr.Out.Header[k] = v
		}
	}
}

// dropForwardedLookalikes removes the headers named as one setXForwarded
// sets but with '_' for '-' (X_Forwarded_For, X-Forwarded_Proto): net/http
// passes them, and CGI-style upstreams (WSGI, Rack, PHP) read both
// spellings as HTTP_X_FORWARDED_FOR, so a client's would stand beside or
// over the gateway's (Django's CVE-2015-0219; nginx drops names with '_'
// by default). Allocation-free: most requests have no '_' in any name.
func dropForwardedLookalikes(h http.Header) {
	for k := range h {
		if strings.IndexByte(k, '_') < 0 {
			continue
		}
		for _, name := range [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
			if equalFoldUnderscore(k, name) {
				delete(h, k)
				break
			}
		}
	}
}

// equalFoldUnderscore reports whether k is name as strings.EqualFold
// compares them, except that any '-' of name may be written '_' in k.
func equalFoldUnderscore(k, name string) bool {
	if len(k) != len(name) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c, n := k[i], name[i]
		if c == '_' && n == '-' {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= n && n <= 'Z' {
			n += 'a' - 'A'
		}
		if c != n {
			return false
		}
	}
	return true
}

// upstreamBody is an upstream response's body, remembering a read error
// (the upstream failed mid-body: the response is aborted) as the request's
// failure. It lives in the exchange: no allocation per response.
type upstreamBody struct {
	rc io.ReadCloser
	ex *exchange
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && b.ex.failErr == nil && b.ex.ctx.Err() == nil {
		b.ex.failErr = fmt.Errorf("%w: reading the response body: %w", errUpstream, err)
	}
	return n, err
}

func (b *upstreamBody) Close() error { return b.rc.Close() }

// answerRefusedUpgrade answers with the response a response_filter made of
// an upgrade's 101: its status, headers (without the upgrade's) and body.
func (ex *exchange) answerRefusedUpgrade() {
	h := ex.rec.Header()
	for k, v := range ex.refused.Header {
		h[k] = v
	}
	for _, k := range [...]string{"Connection", "Upgrade", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Trailer"} {
		h.Del(k)
	}
	writeBody(&ex.rec, ex.inv.Request.Method, ex.refused.StatusCode, ex.originBody)
}

// headerTimer bounds how long an upstream takes to send its response
// headers once it has the whole request (route response_header_timeout_ms),
// as http.Transport's ResponseHeaderTimeout does, but per route and with
// any transport that reports httptrace's WroteRequest. It lives in the
// exchange.
type headerTimer struct {
	mu   sync.Mutex
	t    *time.Timer
	d    time.Duration
	done bool // the headers arrived: a late WroteRequest starts nothing
}

// arm returns ctx for the upstream request, canceled with a timeout
// cause d after the request is written unless the headers arrived, and
// the func that releases it once the exchange is over.
func (h *headerTimer) arm(ctx context.Context, d time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	h.d = d
	h.t = time.AfterFunc(d, func() {
		cancel(fmt.Errorf("no response headers within %v: %w", d, context.DeadlineExceeded))
	})
	h.t.Stop()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: h.wrote})
	return ctx, func() {
		h.arrived()
		cancel(nil)
	}
}

// wrote starts the clock: the transport has written the request, body
// included (a client still uploading is not the upstream's delay). A
// retry on another connection starts it again.
func (h *headerTimer) wrote(httptrace.WroteRequestInfo) {
	h.mu.Lock()
	if !h.done {
		h.t.Reset(h.d)
	}
	h.mu.Unlock()
}

// arrived stops the clock for good. The headers can come before the
// request is written whole (an upstream answering early), hence done.
func (h *headerTimer) arrived() {
	if h.t == nil {
		return
	}
	h.mu.Lock()
	h.done = true
	h.t.Stop()
	h.mu.Unlock()
}

func stripPrefix(path, prefix string) string {
	p, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return path
	}
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return p
}

// serveFunction answers from a function origin: its request_filter must
// End, and its ops become the response, which then goes through the same
// response phases as an upstream's.
func (ex *exchange) serveFunction() {
	rep, err := ex.call(ex.ctx, ex.rt.origin, protocol.PhaseRequestFilter)
	if err == nil && rep.action != protocol.ActionEnd {
		err = ErrOriginNotEnded
	}
	if err != nil {
		// An origin cannot be skipped, whatever on_error says.
		ex.originFailed(err)
		return
	}
	log := ex.g.opLog
	if !ex.filtersResponse(cmp.Or(opStatus(rep.ops), http.StatusOK)) {
		// No response phase runs (the common case): write the response
		// straight from the ops, with no http.Response in between. The
		// chain's response-header ops go over the function's, as they do
		// over an upstream's response.
		h := ex.rec.Header()
		status, body := applyEndOps(h, rep.ops, log)
		applyResponseHeaderOps(h, ex.respOps, log)
		writeBody(&ex.rec, ex.inv.Request.Method, status, body)
		return
	}
	resp := &http.Response{Header: make(http.Header, 4)}
	var body []byte
	resp.StatusCode, body = applyEndOps(resp.Header, rep.ops, log)
	setBody(resp, body)
	ex.originBody = body
	if err := ex.responsePhases(resp); err != nil {
		ex.originFailed(err)
		return
	}
	h := ex.rec.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	if !bodyAllowed(resp.StatusCode) {
		h.Del("Content-Length")
	}
	ex.rec.WriteHeader(resp.StatusCode)
	if ex.inv.Request.Method == http.MethodHead || !bodyAllowed(resp.StatusCode) {
		return
	}
	if _, ok := resp.Body.(*bodyFilter); !ok {
		_, _ = ex.rec.Write(ex.originBody)
		return
	}
	buf := ex.g.bufs.Get()
	defer ex.g.bufs.Put(buf)
	if _, err := io.CopyBuffer(&ex.rec, resp.Body, buf); err != nil {
		// Headers are out: all that is left is to abort, as the proxy does.
		panic(http.ErrAbortHandler)
	}
}

// setBody replaces resp's body with b and fixes the framing headers.
func setBody(resp *http.Response, b []byte) {
	if resp.Body != nil {
		resp.Body.Close()
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Transfer-Encoding")
	resp.TransferEncoding = nil
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
}

// responsePhases runs the response phases on the origin's response before
// any of it is written: the deferred response-header ops of request_filter,
// then each response_filter in chain order (status, headers, body), then
// wraps the body for response_body_filter.
func (ex *exchange) responsePhases(resp *http.Response) error {
	rt := ex.rt
	log := ex.g.opLog
	applyResponseHeaderOps(resp.Header, ex.respOps, log)
	if !ex.filtersResponse(resp.StatusCode) {
		return nil
	}
	r := &protocol.HTTPResponse{
		Status:     resp.StatusCode,
		Headers:    toHeaders(resp.Header, nil),
		Body:       ex.originBody,
		DurationMs: uint64(time.Since(ex.upStart).Milliseconds()),
	}
	ex.inv.Response = r
	defer func() { ex.inv.Response = nil }()
	for _, h := range rt.respFilters {
		if !h.t.serves(protocol.PhaseResponseFilter) {
			continue
		}
		rep, err := ex.call(ex.ctx, h, protocol.PhaseResponseFilter)
		if err != nil {
			if ex.proceed(err, h, protocol.PhaseResponseFilter) {
				continue
			}
			return err
		}
		changed := false
		var b responseBody
		for i := range rep.ops {
			op := &rep.ops[i]
			switch {
			case protocol.IsResponseHeaderOp(op.Code):
				applyResponseHeaderOps(resp.Header, rep.ops[i:i+1], log)
				changed = true
			case op.Code == protocol.OpSetResponseStatus:
				if protocol.ValidStatus(op.Num) {
					resp.StatusCode = int(op.Num)
					resp.Status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
					r.Status = resp.StatusCode
				}
			default:
				b.apply(op)
			}
		}
		if b.set {
			// After the header ops: the body's framing headers win.
			setBody(resp, b.body)
			ex.originBody = b.body
			r.Body = b.body
			changed = true
		}
		if changed {
			r.Headers = toHeaders(resp.Header, r.Headers[:0])
		}
	}
	if len(rt.bodyFilters) > 0 && ex.hasBody(resp.StatusCode) {
		// The filters may change the body's length: stream it chunked.
		resp.Body = &bodyFilter{ex: ex, src: resp.Body, chunk: ex.g.opts.chunk,
			resp: protocol.HTTPResponse{Status: resp.StatusCode, Headers: r.Headers, DurationMs: r.DurationMs}}
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	return nil
}

// originFailed answers a failure of the origin or of a response phase.
func (ex *exchange) originFailed(err error) {
	var ce *CallError
	var mbe *http.MaxBytesError
	switch {
	case ex.bodyCut || errors.Is(err, errBodyTooLarge) || errors.As(err, &mbe):
		err = errBodyTooLarge
	case errors.As(err, &ce), errors.Is(err, ErrOriginNotEnded):
	case ex.ctx.Err() != nil:
		// The client left; fail records it.
	case isTimeout(err):
		// Wrapped, so that the request's one line (finish) says why.
		ex.upErr = err.Error()
		err = fmt.Errorf("%w: %w", errUpstreamTimeout, err)
	default:
		ex.upErr = err.Error()
		err = fmt.Errorf("%w: %w", errUpstream, err)
	}
	if ex.upErr == "" {
		ex.upErr = err.Error()
	}
	ex.fail(err)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bufferPool is the proxy's copy buffers (httputil.BufferPool).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
