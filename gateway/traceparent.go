package gateway

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"

	"github.com/nylon-functions/nylon/protocol"
)

// W3C Trace Context: "00-{trace-id:32 hex}-{parent-id:16 hex}-{flags:2 hex}".
const (
	traceparentLen = 55
	// headerTraceparent is the HTTP header in canonical form, so that
	// http.Header lookups do not canonicalize (allocate) it per request.
	headerTraceparent = "Traceparent"
)

// nextTraceparent continues the trace of an incoming traceparent header with
// a new span id for this hop, keeping its flags, or starts a fresh trace
// when the header is absent or malformed (per the spec, a malformed header
// is ignored, not repaired).
//
// A fresh trace is not sampled (flags 00): the gateway records no spans, and
// the sampled flag says the caller may have. It also keeps NATS cheap:
// nats-server builds a header map for every message whose traceparent is
// sampled, to check the account's message-tracing settings.
//
// The ids come from math/rand/v2's global source: ChaCha8 per thread,
// seeded from the OS, lock-free and ~5x cheaper than crypto/rand on every
// request. Trace ids must be unique and unpredictable enough not to
// collide, not secret (W3C Trace Context, "Security considerations").
func nextTraceparent(in string) string {
	var b [traceparentLen]byte
	var rnd [24]byte
	binary.LittleEndian.PutUint64(rnd[0:], rand.Uint64())
	binary.LittleEndian.PutUint64(rnd[8:], rand.Uint64())
	binary.LittleEndian.PutUint64(rnd[16:], rand.Uint64())
	if protocol.ValidTraceparent(in) {
		copy(b[:], "00-")
		copy(b[3:35], in[3:35])
		b[35] = '-'
		hex.Encode(b[36:52], rnd[16:24])
		b[52] = '-'
		copy(b[53:55], in[53:55])
		return string(b[:])
	}
	copy(b[:], "00-")
	hex.Encode(b[3:35], rnd[:16])
	b[35] = '-'
	hex.Encode(b[36:52], rnd[16:24])
	copy(b[52:], "-00")
	return string(b[:])
}
