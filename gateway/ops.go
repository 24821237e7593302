package gateway

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/nylon-functions/nylon/protocol"
)

// Header ops a plugin may not use: framing and connection management are
// the gateway's and the proxy's to decide, and a wrong value would corrupt
// the exchange rather than change it.
func reservedHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Content-Length", "Transfer-Encoding", "Connection", "Host", "Keep-Alive",
		"Te", "Trailer", "Upgrade", "Proxy-Connection":
		return true
	}
	return false
}

// headerOpOK checks a header op's name and value, logging a refusal. A
// reply may come from any responder on the subject, not only a node whose
// ABI applied the same protocol rules: a value with a control character
// (CR, LF, NUL, or e.g. 0x01 or 0x7F) must reach neither the client, whose
// proxies may answer 502 for it, nor the upstream request, which net/http's
// client would refuse whole (a 502 of the gateway's own).
func headerOpOK(op *protocol.Op, log *slog.Logger) bool {
	if !protocol.ValidHeaderName(op.Key) || reservedHeader(op.Key) || !protocol.ValidHeaderValue(op.Value) {
		log.Warn("gateway: header op refused", "op", op.Code, "header", op.Key)
		return false
	}
	return true
}

// responseBody is the body one reply's ops build, in order. v1 carries all
// of a reply's ops in one message, so the seed's streamed body (106
// SET_RESPONSE_STREAM_HEADER starts it, 104 ..._DATA appends a chunk, 105
// ..._END ends it) arrives whole and is sent like a full body: 103 sets the
// body, 106 starts it afresh, 104 appends to it, and after 105 it is final
// (later body ops are ignored, as writes to a finished stream would be).
// The body built replaces the response's, or the chunk's in
// response_body_filter; it never extends a body the phase was given (an
// upstream's is not even buffered for response_filter).
type responseBody struct {
	body  []byte
	set   bool // a body op applied: the body is the reply's
	ended bool
	owned bool // body is a buffer of its own, not a slice of the reply
}

// apply applies op if it is a body op and reports whether it was one.
func (b *responseBody) apply(op *protocol.Op) bool {
	switch op.Code {
	case protocol.OpSetResponseBody, protocol.OpSetStreamHeader, protocol.OpSetStreamData, protocol.OpSetStreamEnd:
	default:
		return false
	}
	if b.ended {
		return true
	}
	switch op.Code {
	case protocol.OpSetResponseBody:
		b.body, b.owned = op.Value, false
	case protocol.OpSetStreamHeader:
		b.body, b.owned = nil, true
	case protocol.OpSetStreamData:
		if !b.owned {
			// After a 103 the body is a slice of the reply's buffer:
			// appending in place would overwrite the ops behind it. Copy
			// once; later chunks append to the copy (amortised linear, a
			// reply may hold tens of thousands of small chunks).
			b.body, b.owned = append(make([]byte, 0, 2*len(b.body)+len(op.Value)), b.body...), true
		}
		b.body = append(b.body, op.Value...)
	case protocol.OpSetStreamEnd:
		b.ended = true
	}
	b.set = true
	return true
}

// applyResponseHeaderOps applies ops 100 (set), 101 (remove) and 402 (add
// a value) to h, in order: set then add leaves two values, add then set
// one, and remove deletes every value. Other ops are skipped.
func applyResponseHeaderOps(h http.Header, ops []protocol.Op, log *slog.Logger) {
	for i := range ops {
		op := &ops[i]
		switch op.Code {
		case protocol.OpSetResponseHeader:
			if headerOpOK(op, log) {
				h.Set(op.Key, string(op.Value))
			}
		case protocol.OpRemoveResponseHeader:
			if headerOpOK(op, log) {
				h.Del(op.Key)
			}
		case protocol.OpAddResponseHeader:
			if headerOpOK(op, log) {
				h.Add(op.Key, string(op.Value))
			}
		}
	}
}

// applyRequestHeaderOps applies ops 400 (set) and 401 (remove) to the
// request going upstream; they were checked by applyInvocationHeaderOp.
func applyRequestHeaderOps(h http.Header, ops []protocol.Op) {
	for i := range ops {
		op := &ops[i]
		switch op.Code {
		case protocol.OpSetRequestHeader:
			h.Set(op.Key, string(op.Value))
		case protocol.OpRemoveRequestHeader:
			h.Del(op.Key)
		}
	}
}

// applyInvocationHeaderOp applies a request-header op to the invocation's
// request, so later plugins and the origin function see it. It reports
// false for an op refused.
func applyInvocationHeaderOp(q *protocol.HTTPRequest, op *protocol.Op, log *slog.Logger) bool {
	if !headerOpOK(op, log) {
		return false
	}
	name := http.CanonicalHeaderKey(op.Key)
	hs := q.Headers[:0]
	for _, x := range q.Headers {
		if !strings.EqualFold(x.Name, name) {
			hs = append(hs, x)
		}
	}
	q.Headers = hs
	if op.Code == protocol.OpSetRequestHeader {
		q.Headers = append(q.Headers, protocol.Header{Name: name, Value: string(op.Value)})
	}
	return true
}

// refusedStatus returns the first status op of ops that protocol.ValidStatus
// refuses (a reply from a non-wasm responder), and how many there are.
func refusedStatus(ops []protocol.Op) (first int64, n int) {
	for i := range ops {
		if ops[i].Code == protocol.OpSetResponseStatus && !protocol.ValidStatus(ops[i].Num) {
			if n == 0 {
				first = ops[i].Num
			}
			n++
		}
	}
	return first, n
}

// opStatus is the status an op list sets with 102, or 0.
func opStatus(ops []protocol.Op) int {
	s := 0
	for i := range ops {
		if ops[i].Code == protocol.OpSetResponseStatus && protocol.ValidStatus(ops[i].Num) {
			s = int(ops[i].Num)
		}
	}
	return s
}
