package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// msgAccess is the message of every access line (WithAccessLog).
const msgAccess = "gateway: access"

// Bounds, in bytes, of the access line's fields a client chooses: net/http
// lets a request line and headers run to its header limit (1 MiB), so
// without them one request could make a line of a megabyte (and a client
// sending many, gigabytes of log). Cut fields end in "...".
const (
	// maxLoggedUserAgent: real ones are a few hundred at most.
	maxLoggedUserAgent = 256
	// maxLoggedMethod: the longest registered method
	// (UPDATEREDIRECTREF) has 17.
	maxLoggedMethod = 32
	// maxLoggedHost: a DNS name has at most 253, plus ":" and a port.
	maxLoggedHost = 259
	// maxLoggedPath: 2 KiB, the URL length browsers, CDNs and sitemaps
	// have long kept to.
	maxLoggedPath = 2048
)

// accessLine is what one access line says besides the request itself.
type accessLine struct {
	r        *http.Request
	route    string // the route's pattern; empty when none took the request
	function string // the function origin; empty for upstream routes
	status   int
	bytes    int64
	elapsed  time.Duration
	// clientIP is the resolved client address; empty: resolve it from r.
	clientIP  string
	requestID string
	trace     string
}

// logAccess writes a's access line: one per request, never sampled (the
// access log is complete, or it is no access log). The attributes live in
// an array on the stack, not a map or a slice built per field.
func (g *Gateway) logAccess(ctx context.Context, a *accessLine) {
	l := g.opts.access
	if !l.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := a.r
	ip := a.clientIP
	if ip == "" {
		ip, _ = g.clientIP(r)
	}
	n := a.bytes
	if r.Method == http.MethodHead {
		// net/http accepts the body written for a HEAD (a problem's, a
		// function's) and sends none of it.
		n = 0
	}
	var buf [12]slog.Attr
	attrs := append(buf[:0],
		slog.String("method", truncate(r.Method, maxLoggedMethod)),
		slog.String("host", truncate(r.Host, maxLoggedHost)),
		// The path without the query: query strings carry tokens
		// (OAuth codes, presigned URLs, API keys) that a log would keep.
		slog.String("path", truncate(r.URL.Path, maxLoggedPath)),
		slog.String("route", a.route))
	if a.function != "" {
		attrs = append(attrs, slog.String("function", a.function))
	}
	attrs = append(attrs,
		slog.Int("status", a.status),
		slog.Int64("bytes", n),
		slog.Duration("duration", a.elapsed),
		slog.String("client_ip", ip))
	if a.requestID != "" {
		attrs = append(attrs, slog.String("request_id", a.requestID))
	}
	attrs = append(attrs,
		slog.String("traceparent", a.trace),
		slog.String("user_agent", truncate(r.Header.Get("User-Agent"), maxLoggedUserAgent)))
	l.LogAttrs(ctx, slog.LevelInfo, msgAccess, attrs...)
}

// logAccess writes the exchange's access line; call it from finish, once.
func (ex *exchange) logAccess(status int, elapsed time.Duration) {
	a := accessLine{
		r:         ex.req,
		route:     ex.rt.pattern,
		status:    status,
		bytes:     ex.rec.bytes,
		elapsed:   elapsed,
		clientIP:  ex.inv.Request.ClientIP,
		requestID: ex.requestID(),
		trace:     ex.meta.trace,
	}
	if o := ex.rt.origin; o != nil {
		a.function = o.t.function
	}
	ex.g.logAccess(ex.ctx, &a)
}

// requestID is the request_id of the exchange's access line. A failed
// request's is its failure line's (logFailure): the one in the client's
// problem, else the failed call's, so the two lines join on it. Another
// request's is the problem's (426), else its first phase call's: on a
// function route, the function's invocation, which the node logs and the
// function reads.
func (ex *exchange) requestID() string {
	if ex.problemID != "" {
		return ex.problemID
	}
	if ex.failErr != nil {
		var ce *CallError
		if errors.As(ex.failErr, &ce) && !ce.RequestID.IsZero() {
			return ce.RequestID.String()
		}
		return ""
	}
	if !ex.meta.id.IsZero() {
		return ex.meta.id.String()
	}
	return ""
}

// answerUnrouted answers p to a request no route took: 404 and 405 from
// the route table, 400 for a path canonicalRequest refused. Its access
// line has no route, and the traceparent the request's would have had.
func (g *Gateway) answerUnrouted(w http.ResponseWriter, r *http.Request, p Problem) {
	if g.opts.access == nil {
		writeProblem(w, p)
		return
	}
	start := time.Now()
	n := writeProblem(w, p)
	g.logAccess(r.Context(), &accessLine{r: r, status: p.Status, bytes: n, elapsed: time.Since(start),
		requestID: p.RequestID, trace: nextTraceparent(r.Header.Get(headerTraceparent))})
}
