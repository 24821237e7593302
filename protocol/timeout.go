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
		return &DecodeError{Field: "header " + HeaderTimeout, Err: fmt.Errorf("%q: %s", truncateValue(s), why)}
	}
	if s == "" || len(s) > 8 { // MaxTimeout is 86400000: 8 digits
		return 0, bad("want 1 to 8 decimal digits of milliseconds")
	}
	var ms int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, bad("want 1 to 8 decimal digits of milliseconds")
		}
		ms = ms*10 + int64(c-'0')
	}
	d := time.Duration(ms) * time.Millisecond
	if d < time.Millisecond || d > MaxTimeout {
		return 0, bad(fmt.Sprintf("want 1 to %d milliseconds", MaxTimeout.Milliseconds()))
	}
	return d, nil
}

// truncateValue keeps an error about a header value short.
func truncateValue(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
