package ws

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/nylon-functions/nylon/protocol"
)

type paramsKey struct{}

// WithParams returns a copy of ctx carrying route parameters for the
// upgrade request served with it: the invocation's params, in key order.
// Without it, the parameters of a chi router that matched the route are
// used, if any.
//
//	edge.ServeFunction(w, r.WithContext(ws.WithParams(r.Context(), params)), function, config)
func WithParams(ctx context.Context, params map[string]string) context.Context {
	return context.WithValue(ctx, paramsKey{}, configKVs(params))
}

// upgradeRequest is the invocation's view of the upgrade request: no body,
// headers sorted by name (Go's header map has lost the arrival order), and
// the route parameters (WithParams, or chi's).
func upgradeRequest(r *http.Request) protocol.HTTPRequest {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
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
		ClientIP:  clientIP(r.RemoteAddr),
		Headers:   headers,
		Params:    params,
		Timestamp: uint64(time.Now().UnixMilli()),
	}
}

func clientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// traceContext is a connection's W3C trace: one trace id for the whole
// connection (the upgrade request's, when it carried a traceparent), a new
// span id per event.
type traceContext struct {
	buf [55]byte // "00-" trace(32) "-" span(16) "-" flags(2)
}

func traceFrom(parent string) traceContext {
	var t traceContext
	copy(t.buf[:], "00-")
	t.buf[35], t.buf[52] = '-', '-'
	if protocol.ValidTraceparent(parent) {
		copy(t.buf[3:35], parent[3:35])
		copy(t.buf[53:55], parent[53:55])
	} else {
		var id [16]byte
		for i := 0; i < 16; i += 8 {
			v := rand.Uint64()
			for j := range 8 {
				id[i+j] = byte(v >> (8 * j))
			}
		}
		hex.Encode(t.buf[3:35], id[:])
		copy(t.buf[53:55], "00") // not sampled: the edge records no spans (see gateway/traceparent.go)
	}
	return t
}

// next returns the traceparent of the next event: the connection's trace id
// with a fresh span id.
func (t *traceContext) next() string {
	var span [8]byte
	v := rand.Uint64() | 1 // an all-zero span id is invalid
	for j := range 8 {
		span[j] = byte(v >> (8 * j))
	}
	hex.Encode(t.buf[36:52], span[:])
	return string(t.buf[:])
}
