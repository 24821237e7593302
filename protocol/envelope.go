package protocol

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
)

// Version is the wire protocol version this package writes.
const Version uint16 = 1

// Readers accept MinVersion..MaxReadableVersion. A message newer than
// Version but still readable is decoded and the caller should warn (see
// PluginRequest.Newer); anything outside the range is a Decode error wrapping
// ErrUnsupportedVersion.
const (
	MinVersion         uint16 = 1
	MaxReadableVersion uint16 = Version + 1
)

// NATS header names carried beside every message. HeaderTimeout is
// optional; see ParseTimeout.
const (
	HeaderTraceparent = "traceparent"
	HeaderEnv         = "Nylon-Env"
	HeaderTimeout     = "Nylon-Timeout-Ms"
)

// RequestID is the u128 idempotency key of a request, big-endian (on the wire
// a bin8 of 16 bytes). New IDs are UUIDv7, so they sort by creation time.
type RequestID [16]byte

// NewRequestID returns a fresh UUIDv7.
func NewRequestID() RequestID {
	var id RequestID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails on supported platforms
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(id[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(id[2:6], uint32(ms))
	id[6] = id[6]&0x0f | 0x70 // version 7
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

// IsZero reports whether id is all zeros (absent).
func (id RequestID) IsZero() bool { return id == RequestID{} }

// String formats id as a UUID: 8-4-4-4-12 lowercase hex.
func (id RequestID) String() string {
	var b [36]byte
	return string(id.AppendTo(b[:0]))
}

// AppendTo appends id's String form to dst, for callers that format into a
// buffer of their own.
func (id RequestID) AppendTo(dst []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 36)[:n+36]
	b := dst[n:]
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return dst
}

// ParseRequestID parses the UUID form String writes (hyphens optional).
func ParseRequestID(s string) (RequestID, error) {
	var id RequestID
	clean := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			clean = append(clean, s[i])
		}
	}
	if len(clean) != 32 {
		return id, fmt.Errorf("request id %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(id[:], clean); err != nil {
		return id, fmt.Errorf("request id %q: %w", s, err)
	}
	return id, nil
}

// PluginRequest is the envelope a caller sends to a phase subject.
// Encoded as a msgpack map keyed by field name, like rmp_serde::to_vec_named.
type PluginRequest struct {
	Version   uint16
	RequestID RequestID
	SessionID uint32
	Phase     Phase
	Method    uint32
	Data      []byte // an encoded Invocation (AppendInvocation)
	Timestamp uint64 // Unix millis
}

// Newer reports whether the message's version is above the one this package
// writes: it was decoded, but the caller should log a warning.
func (r *PluginRequest) Newer() bool { return r.Version > Version }

// Action is a handler's verdict.
type Action uint8

const (
	ActionNext Action = iota
	ActionEnd
	ActionError
)

var actionNames = [...]string{"Next", "End", "Error"}

// String returns the wire form: "Next", "End" or "Error".
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// ParseAction maps the wire string to an Action.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("unknown action %q", s)
}

// PluginResponse is a node's reply. Data is an encoded op list (AppendOps);
// Error is set when Action is ActionError; an empty Error is written as nil
// (Option<String>::None), any other as valid UTF-8 text.
type PluginResponse struct {
	Version   uint16
	RequestID RequestID
	SessionID uint32
	Action    Action
	Data      []byte
	Error     string
}

// Newer reports whether the message's version is above Version.
func (r *PluginResponse) Newer() bool { return r.Version > Version }

// DefaultMaxPayload is the per-message size limit when none is configured: 1 MiB.
const DefaultMaxPayload = 1 << 20

// RequestOverhead is the room a request message has beyond a function's
// body limit (a deployment's max_body_bytes): the envelope and the rest of
// the invocation (method, path, query, headers, params, config) with their
// msgpack framing. Gateways and nodes accept request messages of up to
// max_body_bytes + RequestOverhead for such a function, so a deployment's
// limit must leave this much room under the NATS server's max_payload.
const RequestOverhead = 64 << 10

// PayloadLimits caps encoded message sizes per phase. The zero value applies
// DefaultMaxPayload everywhere.
type PayloadLimits struct {
	Default  int           // 0 means DefaultMaxPayload
	PerPhase map[Phase]int // overrides; 0 entries are ignored
}

// Max returns the limit for phase p.
func (l PayloadLimits) Max(p Phase) int {
	if n := l.PerPhase[p]; n > 0 {
		return n
	}
	if l.Default > 0 {
		return l.Default
	}
	return DefaultMaxPayload
}

// Check returns a *DecodeError wrapping ErrTooLarge when n bytes exceed the
// limit of phase p.
func (l PayloadLimits) Check(p Phase, n int) error {
	if max := l.Max(p); n > max {
		return &DecodeError{Field: "payload", Err: fmt.Errorf("%w: %d bytes, limit %d for %s", ErrTooLarge, n, max, p)}
	}
	return nil
}
