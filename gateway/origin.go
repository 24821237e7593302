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
			pr.SetXForwarded()
			applyRequestHeaderOps(pr.Out.Header, ex.reqOps)
			pr.Out.Header.Set(headerTraceparent, ex.meta.trace)
		},
		ModifyResponse: func(resp *http.Response) error {
			ex := exchangeOf(resp.Request.Context())
			if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil && resp.Body != http.NoBody {
				// Not an upgrade's: the proxy needs that one's body
				// to be the connection.
				ex.upBody = upstreamBody{rc: resp.Body, ex: ex}
				resp.Body = &ex.upBody
			}
			return ex.responsePhases(resp)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			exchangeOf(r.Context()).originFailed(err)
		},
		BufferPool: &g.bufs,
		// The proxy logs a body it could not read to the end; upstreamBody
		// gives finish that failure for its one line, so the proxy's own
		// is detail.
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
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
			switch op.Code {
			case protocol.OpSetResponseHeader, protocol.OpRemoveResponseHeader:
				applyResponseHeaderOps(resp.Header, rep.ops[i:i+1], log)
				changed = true
			case protocol.OpSetResponseStatus:
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
