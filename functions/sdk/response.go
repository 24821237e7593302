package sdk

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// Response is the HTTP response: the upstream's status, headers and body in
// the response phases, and the writes that change it (or, with Context.End
// in request_filter, replace it).
//
// Setters have no error result so they chain like the Nylon Go SDK's; the
// node's first refusal is reported by Context.Err.
//
// Which writes take effect depends on the phase:
//   - request_filter: with Context.End, status, headers and body make the
//     answer; with Next only SetHeader, AddHeader and RemoveHeader are
//     kept, applied to the response that comes back.
//   - response_filter: status, headers and body change the response
//     before anything is sent.
//   - response_body_filter: Body and Write replace the current chunk. The
//     headers are already sent: SetHeader, AddHeader, RemoveHeader,
//     SetStatus and Redirect are refused with ErrNotAllowed.
//   - logging: every write is refused with ErrNotAllowed.
type Response struct {
	c       *Context
	headers Header
}

// SetHeader sets a response header, replacing its values. A name that is
// not an HTTP token, or a value with a control character other than tab
// (CR, LF, NUL, 0x01-0x1F, 0x7F: RFC 9110 forbids them, and strict
// proxies answer a response carrying one with 502), is refused with
// ErrBadArgument; bytes 0x80-0xFF are allowed. The gateway keeps the
// framing headers (Content-Length, Transfer-Encoding, Connection, ...) its
// own. Each SetHeader replaces the last; to send several values of one
// header, use AddHeader.
func (r *Response) SetHeader(name, value string) {
	if r.headersSent(abi.OpSetResponseHeader) {
		return
	}
	r.c.check(abi.OpSetResponseHeader, abi.Write(abi.OpSetResponseHeader, name, value))
}

// AddHeader adds value to the response header name, keeping the values it
// already has (http.Header.Add): the way to send a header more than once,
// as two cookies need two Set-Cookie lines:
//
//	res.AddHeader("Set-Cookie", "session=abc; Path=/; HttpOnly")
//	res.AddHeader("Set-Cookie", "theme=dark; Path=/")
//
// Header writes apply in order: SetHeader then AddHeader sends two values,
// AddHeader then SetHeader one, and RemoveHeader removes every value. In
// response_filter the value goes after the upstream's own (and after those
// of earlier plugins). Names and values are checked as SetHeader's are.
func (r *Response) AddHeader(name, value string) {
	if r.headersSent(abi.OpAddResponseHeader) {
		return
	}
	r.c.check(abi.OpAddResponseHeader, abi.Write(abi.OpAddResponseHeader, name, value))
}

// RemoveHeader removes a response header, every value of it.
func (r *Response) RemoveHeader(name string) {
	if r.headersSent(abi.OpRemoveResponseHeader) {
		return
	}
	r.c.check(abi.OpRemoveResponseHeader, abi.Write(abi.OpRemoveResponseHeader, name, ""))
}

// SetStatus sets the response status code: a final HTTP status, 200-599.
// Anything else (an interim 1xx, or a number HTTP has no status for) is
// refused as ErrBadArgument, as the node refuses it.
func (r *Response) SetStatus(code int) {
	if code < 200 || code > 599 {
		r.c.check(abi.OpSetResponseStatus, abi.ResultBadArgument)
		return
	}
	if r.headersSent(abi.OpSetResponseStatus) {
		return
	}
	r.c.check(abi.OpSetResponseStatus, abi.WriteNum(abi.OpSetResponseStatus, int64(code), ""))
}

// headersSent refuses a status or header write in response_body_filter,
// and reports whether it did: the gateway has already sent the status and
// headers. The node refuses such writes too (-1, ErrNotAllowed); refusing
// them here as well keeps the rule in the SDK's native tests and spares
// the call.
func (r *Response) headersSent(method uint32) bool {
	if r.c.phase != PhaseResponseBodyFilter {
		return false
	}
	r.c.check(method, abi.ResultNotAllowed)
	return true
}

// Body sets the full response body; in response_body_filter it replaces the
// current chunk. The node copies b before Body returns, so b may be reused.
func (r *Response) Body(b []byte) {
	r.c.check(abi.OpSetResponseBody, abi.WriteData(abi.OpSetResponseBody, b))
}

// Write appends p to the body the handler writes (op 104, the seed's
// SET_RESPONSE_STREAM_DATA): after Body, to that body, otherwise to an
// empty one, which then replaces the response's (in response_body_filter,
// the chunk's). Response is an io.Writer, so fmt.Fprintf(ctx.Response(),
// ...) and templates write straight into it. Every Write is one host call
// and one op, so write a few large pieces rather than many small ones. The
// node copies p before Write returns. The error is the node's refusal (too
// large, or not allowed in this phase), also reported by Context.Err.
func (r *Response) Write(p []byte) (int, error) {
	if err := r.c.check(abi.OpSetStreamData, abi.WriteData(abi.OpSetStreamData, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// BodyText sets a text/plain body (charset utf-8).
func (r *Response) BodyText(s string) {
	r.SetHeader("Content-Type", "text/plain; charset=utf-8")
	r.c.check(abi.OpSetResponseBody, abi.Write(abi.OpSetResponseBody, s, ""))
}

// BodyHTML sets a text/html body (charset utf-8).
func (r *Response) BodyHTML(s string) {
	r.SetHeader("Content-Type", "text/html; charset=utf-8")
	r.c.check(abi.OpSetResponseBody, abi.Write(abi.OpSetResponseBody, s, ""))
}

// BodyJSON sets the body to v encoded as JSON, with Content-Type
// application/json. It returns the encoding error, or the node's refusal
// of the body.
//
// encoding/json reflects over v, which inside WebAssembly costs several
// microseconds (more than the rest of a small call); on hot paths build
// small documents with AppendJSONString instead.
func (r *Response) BodyJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("body json: %w", err)
	}
	r.SetHeader("Content-Type", "application/json")
	return r.c.check(abi.OpSetResponseBody, abi.WriteData(abi.OpSetResponseBody, b))
}

// Redirect sets Location to url and the status to code (302 Found when code
// is 0; any other code outside 300-399 is refused as a bad argument). In
// request_filter, call Context.End to answer without calling the upstream.
func (r *Response) Redirect(url string, code int) {
	if code == 0 {
		code = 302
	}
	if code < 300 || code > 399 || url == "" {
		r.c.check(abi.OpSetResponseStatus, abi.ResultBadArgument)
		return
	}
	if r.headersSent(abi.OpSetResponseStatus) {
		return
	}
	r.SetHeader("Location", url)
	r.SetStatus(code)
}

// Status returns the upstream's status code; 0 before there is one.
func (r *Response) Status() int { return int(r.c.g.readInt(abi.ReadResponseStatus, "")) }

// Header returns the first value of the upstream response header name (any
// case), or "". It reads the response as the phase received it, without
// this handler's own writes. For every value of a repeated header use
// Headers().Values(name).
func (r *Response) Header(name string) string {
	v, _ := r.LookupHeader(name)
	return v
}

// LookupHeader is Header that also reports whether the header is present.
func (r *Response) LookupHeader(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if r.headers != nil {
		return r.headers.lookup(name)
	}
	return r.c.g.lookupString(abi.ReadResponseHeader, name)
}

// Headers returns every upstream response header, keys in canonical form.
// The map is the SDK's until the call ends: read it, do not keep or change
// it.
func (r *Response) Headers() Header {
	if r.headers == nil {
		r.headers = r.c.g.readHeader(abi.ReadResponseHeaders)
	}
	return r.headers
}

// ReadBody returns the response body: in response_body_filter the current
// chunk (32 KiB by default; see ChunkIndex), in response_filter the whole body
// of a function origin. An upstream's body is streamed, so in its
// response_filter ReadBody is empty: read it in response_body_filter. The
// slice is the caller's; nil when there is no response.
func (r *Response) ReadBody() []byte {
	method := abi.ReadResponseFullBody
	if r.c.phase == PhaseResponseBodyFilter {
		method = abi.GetPayload
	}
	b, _ := r.c.g.readCopy(method, "")
	return b
}

// BodyLength returns the upstream body's length in bytes, as far as known.
func (r *Response) BodyLength() int64 { return r.c.g.readInt(abi.ReadResponseBytes, "") }

// ChunkIndex returns the index of the current body chunk (0 first) in
// response_body_filter, or -1 outside it.
//
// Each chunk is a call of its own, which may run on another instance or
// node than the chunk before: a filter cannot carry state from one chunk
// to the next in package variables. An empty body is one empty last chunk,
// so a filter may still append to it.
func (r *Response) ChunkIndex() int {
	i, _ := r.chunkInfo()
	return i
}

// LastChunk reports whether the current body chunk is the last one; false
// outside response_body_filter.
func (r *Response) LastChunk() bool {
	_, last := r.chunkInfo()
	return last
}

// chunkInfo parses "index,last" (e.g. "3,1").
func (r *Response) chunkInfo() (index int, last bool) {
	b, ok := r.c.g.read(abi.ReadBodyChunkInfo, "")
	if !ok {
		return -1, false
	}
	for i, c := range b {
		if c == ',' {
			n, err := strconv.Atoi(string(b[:i]))
			if err != nil {
				return -1, false
			}
			return n, string(b[i+1:]) == "1"
		}
	}
	return -1, false
}

// Duration returns how long the upstream took (millisecond precision).
func (r *Response) Duration() time.Duration {
	return time.Duration(r.c.g.readInt(abi.ReadResponseDuration, "")) * time.Millisecond
}

// UpstreamError returns the upstream failure's text (e.g. a connection
// refused), or "" when the upstream answered.
func (r *Response) UpstreamError() string { return r.c.g.readString(abi.ReadResponseError, "") }
