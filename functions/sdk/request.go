package sdk

import (
	"net/url"
	"time"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// Request is the client's HTTP request (for WebSocket handlers, the upgrade
// request). Values are read from the node when first asked for and cached
// for the rest of the call.
type Request struct {
	c       *Context
	query   url.Values
	headers Header
	params  map[string]string
}

// Method returns the HTTP method, e.g. "GET".
func (r *Request) Method() string { return r.c.cachedString(cMethod, abi.ReadRequestMethod, "") }

// Path returns the URL path, e.g. "/users/42".
func (r *Request) Path() string { return r.c.cachedString(cPath, abi.ReadRequestPath, "") }

// URL returns the path and query as the client sent them, e.g.
// "/users/42?full=1".
func (r *Request) URL() string { return r.c.cachedString(cURL, abi.ReadRequestURL, "") }

// RawQuery returns the query string without the '?', e.g. "full=1".
func (r *Request) RawQuery() string { return r.c.cachedString(cRawQuery, abi.ReadRequestQuery, "") }

// Query returns the parsed query string. Malformed pairs are skipped. For one
// parameter QueryParam is cheaper: the node looks it up.
func (r *Request) Query() url.Values {
	if r.query == nil {
		r.query, _ = url.ParseQuery(r.RawQuery())
		if r.query == nil {
			r.query = url.Values{}
		}
	}
	return r.query
}

// QueryParam returns the first value of the query parameter name, or "".
func (r *Request) QueryParam(name string) string {
	if r.query != nil {
		return r.query.Get(name)
	}
	return r.c.g.readString(abi.ReadRequestQueryParam, name)
}

// Host returns the request's host (the Host header or URL authority).
func (r *Request) Host() string { return r.c.cachedString(cHost, abi.ReadRequestHost, "") }

// Scheme returns the scheme the client used, e.g. "https".
func (r *Request) Scheme() string { return r.c.cachedString(cScheme, abi.ReadRequestScheme, "") }

// ClientIP returns the client's address as the edge saw it.
func (r *Request) ClientIP() string { return r.c.cachedString(cClientIP, abi.ReadRequestClientIP, "") }

// Header returns the first value of the request header name (any case), or
// "".
func (r *Request) Header(name string) string {
	if r.headers != nil {
		return r.headers.Get(name)
	}
	if name == "" {
		return ""
	}
	return r.c.g.readString(abi.ReadRequestHeader, name)
}

// Headers returns every request header, keys in canonical form. The map is
// the SDK's until the call ends: read it, do not keep or change it.
func (r *Request) Headers() Header {
	if r.headers == nil {
		r.headers = r.c.g.readHeader(abi.ReadRequestHeaders)
	}
	return r.headers
}

// Body returns the request body (nil when there is none). The slice is the
// caller's.
func (r *Request) Body() []byte {
	b, _ := r.c.g.readCopy(abi.ReadRequestFullBody, "")
	if len(b) == 0 {
		return nil // the host reports an empty body as present with length 0
	}
	return b
}

// BodyLength returns the request body's length in bytes.
func (r *Request) BodyLength() int64 { return r.c.g.readInt(abi.ReadRequestBytes, "") }

// Params returns the route parameters, e.g. {"id": "42"} for /users/{id};
// a trailing * in the route is the parameter "*" ({"*": "a/b"} for /r/*
// and /r/a/b). The gateway fills them from the route that matched; nylon
// invoke matches no route and sends only its --param name=value flags. The
// map is the SDK's until the call ends.
func (r *Request) Params() map[string]string {
	if r.params == nil {
		r.params = map[string]string{}
		if b, ok := r.c.g.read(abi.ReadRequestParams, ""); ok {
			eachPair(b, func(k, v string) { r.params[k] = v })
		}
	}
	return r.params
}

// Param returns the route parameter name ("*" for a route's trailing *),
// or "" (see Params).
func (r *Request) Param(name string) string {
	if r.params != nil {
		return r.params[name]
	}
	if name == "" {
		return ""
	}
	return r.c.g.readString(abi.ReadRequestParam, name)
}

// Timestamp returns when the edge received the request (millisecond
// precision); the zero time when unknown.
func (r *Request) Timestamp() time.Time {
	ms := r.c.g.readInt(abi.ReadRequestTimestamp, "")
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// SetHeader sets a header of the request sent upstream (request_filter
// only). A refusal is reported by Context.Err.
func (r *Request) SetHeader(name, value string) {
	r.c.check(abi.OpSetRequestHeader, abi.Write(abi.OpSetRequestHeader, name, value))
}

// RemoveHeader removes a header from the request sent upstream
// (request_filter only). A refusal is reported by Context.Err.
func (r *Request) RemoveHeader(name string) {
	r.c.check(abi.OpRemoveRequestHeader, abi.Write(abi.OpRemoveRequestHeader, name, ""))
}

// readHeader reads a header list into a Header.
func (g *instance) readHeader(method uint32) Header {
	h := Header{}
	if b, ok := g.read(method, ""); ok {
		eachPair(b, h.Add)
	}
	return h
}
