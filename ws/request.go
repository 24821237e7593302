package ws

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/nylon-functions/nylon/internal/realip"
	"github.com/nylon-functions/nylon/protocol"
)

type paramsKey struct{}

type firstNodeWaitKey struct{}

// WithFirstNodeWait returns a copy of ctx for the upgrade request of a
// function deployed moments ago, which no node may have loaded yet: the
// connection's open event, when it finds no responder, is sent again for
// up to d (after the first such answer), as the gateway's HTTP calls wait
// for a new function's first node, instead of closing the connection with
// 1013 after EventRetries. d <= 0 changes nothing.
func WithFirstNodeWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, firstNodeWaitKey{}, d)
}

// firstNodeWait is the wait WithFirstNodeWait set on r, or 0.
func firstNodeWait(r *http.Request) time.Duration {
	d, _ := r.Context().Value(firstNodeWaitKey{}).(time.Duration)
	return d
}

// WithParams returns a copy of ctx carrying route parameters for the
// upgrade request served with it: the invocation's params, in key order.
// Without it, the parameters of a chi router that matched the route are
// used, if any.
//
//	edge.ServeFunction(w, r.WithContext(ws.WithParams(r.Context(), params)), function, config)
func WithParams(ctx context.Context, params map[string]string) context.Context {
	return context.WithValue(ctx, paramsKey{}, configKVs(params))
}

type clientIPKey struct{}

// WithClientIP returns a copy of ctx for an upgrade request whose client
// address is ip rather than the TCP peer's: the address a router in front
// of the edge resolved behind trusted proxies (the gateway's
// RouteInfo.ClientIP, see gateway.WithTrustedProxies). Every event of the
// connection carries it as the request's client IP. The edge itself reads
// no X-Forwarded-For. An empty ip changes nothing.
//
//	edge.ServeFunction(w, r.WithContext(ws.WithClientIP(r.Context(), info.ClientIP)), function, config)
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

type schemeKey struct{}

// WithScheme returns a copy of ctx for an upgrade request whose client
// used scheme ("http" or "https") rather than what the TCP connection
// shows: the scheme a router in front of the edge took from a trusted
// proxy's X-Forwarded-Proto (the gateway's RouteInfo.Scheme), as when a
// balancer terminates TLS. Every event of the connection carries it. An
// empty scheme changes nothing.
func WithScheme(ctx context.Context, scheme string) context.Context {
	return context.WithValue(ctx, schemeKey{}, scheme)
}

// upgradeRequest is the invocation's view of the upgrade request: no body,
// headers sorted by name (Go's header map has lost the arrival order), and
// the route parameters (WithParams, or chi's).
func upgradeRequest(r *http.Request) protocol.HTTPRequest {
	scheme, _ := r.Context().Value(schemeKey{}).(string)
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	names := make([]string, 0, len(r.Header))
	n := 0
	for name, vs := range r.Header {
		names = append(names, name)
		n += len(vs)
	}
	slices.Sort(names)
	headers := make([]protocol.Header, 0, n)
	for _, name := range names {
		for _, v := range r.Header[name] {
			headers = append(headers, protocol.Header{Name: name, Value: v})
		}
	}
	params, ok := r.Context().Value(paramsKey{}).([]protocol.KV)
	if rc := chi.RouteContext(r.Context()); !ok && rc != nil {
		for i, k := range rc.URLParams.Keys {
			if k == "" || k == "*" || i >= len(rc.URLParams.Values) {
				continue
			}
			params = append(params, protocol.KV{Key: k, Value: rc.URLParams.Values[i]})
		}
	}
	return protocol.HTTPRequest{
		Method:    r.Method,
		Scheme:    scheme,
		Host:      r.Host,
		Path:      r.URL.Path,
		Query:     r.URL.RawQuery,
		ClientIP:  requestClientIP(r),
		Headers:   headers,
		Params:    params,
		Timestamp: uint64(time.Now().UnixMilli()),
	}
}

// requestClientIP is the client address WithClientIP set on r, else the
// TCP peer's.
func requestClientIP(r *http.Request) string {
	if ip, _ := r.Context().Value(clientIPKey{}).(string); ip != "" {
		return ip
	}
	return realip.Host(r.RemoteAddr)
}
