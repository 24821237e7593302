package sdk

import (
	"net/url"
	"time"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// Request is the client's HTTP request (for WebSocket handlers, the upgrade
// request). Values are read from the node when first asked for and cached
// for the rest of the call. Absent values read as "" (or nil, 0); the
// Lookup methods tell an absent value from an empty one.
//
// Reads show the request as this handler received it: its own SetHeader
// and RemoveHeader change what later plugins and the upstream get, not what
// Header returns.
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

// QueryParam returns the first value of the query parameter name, decoded
// ("a+b%21" reads "a b!"), or "". For every value of a repeated parameter
// (?tag=a&tag=b) use Query()["tag"].
func (r *Request) QueryParam(name string) string {
	v, _ := r.LookupQueryParam(name)
	return v
}

// LookupQueryParam is QueryParam that also reports whether the parameter
// is present, so that ?debug and ?debug= can be told from no debug at all.
func (r *Request) LookupQueryParam(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if r.query != nil {
		if vs := r.query[name]; len(vs) > 0 {
			return vs[0], true
		}
		return "", false
	}
	return r.c.g.lookupString(abi.ReadRequestQueryParam, name)
}

// Host returns the request's host (the Host header or URL authority).
func (r *Request) Host() string { return r.c.cachedString(cHost, abi.ReadRequestHost, "") }

// Scheme returns the scheme the client used, "http" or "https": behind a
// TLS-terminating balancer the gateway trusts (--trusted-proxies), the one
// its X-Forwarded-Proto names.
func (r *Request) Scheme() string { return r.c.cachedString(cScheme, abi.ReadRequestScheme, "") }

// ClientIP returns the client's address as the edge resolved it: the TCP
// peer's or, behind proxies the gateway trusts (--trusted-proxies), the
// rightmost X-Forwarded-For entry that is not one of them.
func (r *Request) ClientIP() string { return r.c.cachedString(cClientIP, abi.ReadRequestClientIP, "") }

// Header returns the first value of the request header name (any case), or
// "". For every value of a repeated header use Headers().Values(name).
func (r *Request) Header(name string) string {
	v, _ := r.LookupHeader(name)
	return v
}

// LookupHeader is Header that also reports whether the header is present,
// so that a header sent empty can be told from a missing one.
func (r *Request) LookupHeader(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if r.headers != nil {
		return r.headers.lookup(name)
	}
	return r.c.g.lookupString(abi.ReadRequestHeader, name)
}

// Headers returns every request header, keys in canonical form, the values
// of a repeated header in the order received. The map is the SDK's until
// the call ends: read it, do not keep or change it.
func (r *Request) Headers() Header {
	if r.headers == nil {
		r.headers = r.c.g.readHeader(abi.ReadRequestHeaders)
	}
	return r.headers
}

// Body returns the request body (nil when there is none). The slice is the
// caller's. Each call reads (and copies) the body again: call it once.
//
// In request_filter the body is there whole, up to the route's
// max_body_bytes (the gateway answers a larger request 413 before any
// handler runs). The gateway leaves it out (Body is nil, BodyLength 0) in
// the response phases of a route without a request_filter, whose body it
// streams upstream unread, and in logging when it is above 64 KiB.
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
	v, _ := r.LookupParam(name)
	return v
}

// LookupParam is Param that also reports whether the route has the
// parameter.
func (r *Request) LookupParam(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if r.params != nil {
		v, ok := r.params[name]
		return v, ok
	}
	return r.c.g.lookupString(abi.ReadRequestParam, name)
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

// SetHeader sets a header of the request sent upstream, replacing its
// values; later plugins see it too (request_filter only: elsewhere it is
// refused with ErrNotAllowed). A refusal is reported by Context.Err:
// ErrBadArgument for a name that is not an HTTP token or a value with a
// control character other than tab (CR, LF, NUL, 0x01-0x1F, 0x7F).
func (r *Request) SetHeader(name, value string) {
	r.c.check(abi.OpSetRequestHeader, abi.Write(abi.OpSetRequestHeader, name, value))
}

// RemoveHeader removes a header from the request sent upstream and from
// what later plugins see (request_filter only). A refusal is reported by
// Context.Err.
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
