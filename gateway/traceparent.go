package gateway

import "github.com/nylon-functions/nylon/protocol"

// headerTraceparent is the W3C traceparent HTTP header in canonical form,
// so that http.Header lookups do not canonicalize (allocate) it per request.
const headerTraceparent = "Traceparent"

// nextTraceparent is the traceparent of a request's phase calls: the
// incoming one continued with a new span id for the gateway's hop, keeping
// its flags, or a fresh unsampled trace when it is absent or malformed (per
// the spec, a malformed header is ignored, not repaired).
func nextTraceparent(in string) string {
	t := protocol.ContinueTrace(in)
	return t.Next()
}
