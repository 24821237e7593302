package protocol

import (
	"encoding/hex"
	"math/rand/v2"
)

// traceparentLen is the length of a version-00 W3C traceparent:
// "00-{trace-id:32 hex}-{parent-id:16 hex}-{flags:2 hex}".
const traceparentLen = 55

// ValidTraceparent reports whether s is a traceparent header value an edge
// may continue (W3C Trace Context): the version-00 layout, or a future
// version's with more fields after it; lowercase hex; a version other than
// ff; non-zero trace and parent ids. Per the spec, an invalid value is
// ignored (a fresh trace starts), not repaired.
func ValidTraceparent(s string) bool {
	if len(s) < traceparentLen {
		return false
	}
	if len(s) > traceparentLen && (s[:2] == "00" || s[traceparentLen] != '-') {
		return false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	if !lowerHex(s[0:2]) || s[0:2] == "ff" || !lowerHex(s[3:35]) || !lowerHex(s[36:52]) || !lowerHex(s[53:55]) {
		return false
	}
	return !allZero(s[3:35]) && !allZero(s[36:52])
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// Trace is a W3C trace an edge takes part in: the trace id and flags of the
// traceparent it received, or a fresh trace when that was absent or
// invalid. Each Next is one more hop of the edge's: the same trace with a
// new span id. The gateway makes one per HTTP request, the WebSocket edge
// one per connection (a span per event).
type Trace struct {
	buf [traceparentLen]byte // "00-" trace(32) "-" span(16) "-" flags(2)
}

// ContinueTrace continues parent when it is valid (ValidTraceparent), or
// starts a fresh trace.
//
// A fresh trace is not sampled (flags 00): the edges record no spans, and
// the sampled flag says the caller may have. It also keeps NATS cheap:
// nats-server builds a header map for every message whose traceparent is
// sampled, to check the account's message-tracing settings.
//
// Ids come from math/rand/v2's global source: ChaCha8 per thread, seeded
// from the OS, lock-free and ~5x cheaper than crypto/rand on every request.
// Trace ids must be unique and unpredictable enough not to collide, not
// secret (W3C Trace Context, "Security considerations").
func ContinueTrace(parent string) Trace {
	var t Trace
	copy(t.buf[:], "00-")
	t.buf[35], t.buf[52] = '-', '-'
	if ValidTraceparent(parent) {
		copy(t.buf[3:35], parent[3:35])
		copy(t.buf[53:55], parent[53:55])
		return t
	}
	var id [16]byte
	putRandom(id[:8], rand.Uint64())
	putRandom(id[8:], rand.Uint64())
	hex.Encode(t.buf[3:35], id[:])
	copy(t.buf[53:55], "00")
	return t
}

// Next returns the traceparent of the trace's next span: its trace id and
// flags with a fresh span id.
func (t *Trace) Next() string {
	var span [8]byte
	putRandom(span[:], rand.Uint64()|1) // an all-zero span id is invalid
	hex.Encode(t.buf[36:52], span[:])
	return string(t.buf[:])
}

func putRandom(dst []byte, v uint64) {
	for i := range dst {
		dst[i] = byte(v >> (8 * i))
	}
}
