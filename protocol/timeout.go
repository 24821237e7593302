package protocol

import (
	"fmt"
	"strconv"
	"time"
)

// MaxTimeout is the longest timeout HeaderTimeout may carry: a day, far
// beyond any phase call, and small enough that a deadline computed from it
// never overflows.
const MaxTimeout = 24 * time.Hour

// FormatTimeout renders d as the value of HeaderTimeout: whole milliseconds,
// rounded up so a caller never announces less than it waits, at least 1
// and at most MaxTimeout.
func FormatTimeout(d time.Duration) string {
	d = min(max(d, time.Millisecond), MaxTimeout)
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return strconv.FormatInt(int64(ms), 10)
}

// ParseTimeout reads a HeaderTimeout value: how long, from when a node
// receives the request, the caller waits for the reply, as a decimal
// count of milliseconds from 1 to MaxTimeout. It is the caller's promise,
// like gRPC's grpc-timeout or Envoy's x-envoy-expected-rq-timeout-ms: a
// node does not start a request whose caller has stopped waiting. Anything
// else is a *DecodeError.
func ParseTimeout(s string) (time.Duration, error) {
	bad := func(why string) error {
		return &DecodeError{Field: "header " + HeaderTimeout, Err: fmt.Errorf("%q: %s", truncate(s, 32), why)}
	}
	// MaxTimeout is 86400000: 8 digits. ParseUint takes no sign.
	ms, err := strconv.ParseUint(s, 10, 32)
	if len(s) > 8 || err != nil {
		return 0, bad("want 1 to 8 decimal digits of milliseconds")
	}
	d := time.Duration(ms) * time.Millisecond
	if d < time.Millisecond || d > MaxTimeout {
		return 0, bad(fmt.Sprintf("want 1 to %d milliseconds", MaxTimeout.Milliseconds()))
	}
	return d, nil
}
