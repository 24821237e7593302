package registry

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nylon-functions/nylon/protocol"
)

// Bounds that Spec.Validate enforces. They keep a record small enough to be
// one KV value and keep limits within what a node can honour.
const (
	MaxRoutes         = 64
	MaxRouteLen       = 1024
	MaxConfigKeys     = 256
	MaxConfigKeyLen   = 128
	MaxConfigBytes    = 64 << 10 // keys plus values
	MaxDescriptionLen = 1024
	MaxCreatedByLen   = 256
	MaxQueueGroupLen  = 128

	MaxTimeoutMS    = 10 * 60 * 1000 // 10 minutes
	MaxMemoryMB     = 4096           // wasm32 addresses at most 4 GiB
	MaxWorkers      = 4096
	MaxBodyBytesCap = 64 << 20
)

// Limits bound one function's execution. A zero field means "the node's
// default", so operators can change defaults without redeploying.
type Limits struct {
	// TimeoutMS is the wall-clock budget of one handler call, in milliseconds.
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// MemoryMB caps a guest instance's linear memory, in MiB.
	MemoryMB int `json:"memory_mb,omitempty"`
	// MaxWorkers caps concurrent instances of the function on one node.
	MaxWorkers int `json:"max_workers,omitempty"`
	// MaxBodyBytes caps the body a handler is given or may write; the
	// gateway's function routes and the nodes enforce it (413 beyond). A
	// request to the function is one NATS message of up to MaxBodyBytes +
	// protocol.RequestOverhead, so the admin API refuses a limit over the
	// NATS server's max_payload minus that overhead.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
}

// Timeout returns TimeoutMS as a duration (0 = node default).
func (l Limits) Timeout() time.Duration { return time.Duration(l.TimeoutMS) * time.Millisecond }

// Spec is what a deployer supplies: everything in a Record except what the
// registry assigns (version, module digest and size, creation time).
type Spec struct {
	// Name is the function's name (protocol.ValidateName).
	Name string `json:"name"`
	// Phases is what the module's nylon_phases export returned.
	Phases protocol.PhaseSet `json:"phase_set"`
	// Routes are the gateway paths served by the function, each starting with "/".
	Routes []string `json:"routes,omitempty"`
	// Config is passed to every invocation as the route's config map.
	Config map[string]string `json:"config,omitempty"`
	// Limits bound execution; zero fields take node defaults.
	Limits Limits `json:"limits"`
	// QueueGroup is the NATS queue group of the function's endpoints; empty
	// means the function's name.
	QueueGroup string `json:"queue_group,omitempty"`
	// Description is free text shown by the admin API.
	Description string `json:"description,omitempty"`
	// CreatedBy says who or what deployed, e.g. a token subject or "cli".
	CreatedBy string `json:"created_by,omitempty"`
}

// Record is one immutable deployed version of a function, stored as JSON in
// the functions KV bucket.
type Record struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	// SHA256 is the lowercase hex digest of the module, also its object name.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Phases are the phase names ("request_filter", ..., "events").
	Phases   []string          `json:"phases"`
	PhaseSet protocol.PhaseSet `json:"phase_set"`
	// WS reports whether the module handles WebSocket events.
	WS          bool              `json:"ws"`
	Routes      []string          `json:"routes,omitempty"`
	Config      map[string]string `json:"config,omitempty"`
	Limits      Limits            `json:"limits"`
	QueueGroup  string            `json:"queue_group"`
	CreatedAt   time.Time         `json:"created_at"`
	Description string            `json:"description,omitempty"`
	CreatedBy   string            `json:"created_by,omitempty"`
	// Active is set on records read back when the version is the active one.
	// It is never stored: records are immutable, the active pointer moves.
	Active bool `json:"active,omitempty"`
}

// Spec returns the deployer-supplied part of r, e.g. to redeploy it.
func (r Record) Spec() Spec {
	return Spec{
		Name:        r.Name,
		Phases:      r.PhaseSet,
		Routes:      slices.Clone(r.Routes),
		Config:      maps.Clone(r.Config),
		Limits:      r.Limits,
		QueueGroup:  r.QueueGroup,
		Description: r.Description,
		CreatedBy:   r.CreatedBy,
	}
}

// Validate checks every field of s and reports all failures at once; each
// wraps ErrInvalidSpec and names its field.
func (s Spec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidSpec, field, fmt.Sprintf(format, args...)))
	}

	if err := protocol.ValidateName(s.Name); err != nil {
		errs = append(errs, fmt.Errorf("%w: name: %w", ErrInvalidSpec, err))
	}
	if !s.Phases.Valid() {
		bad("phase_set", "%#x is not a non-empty set of ABI v1 phases", uint32(s.Phases))
	}

	if len(s.Routes) > MaxRoutes {
		bad("routes", "%d routes, at most %d", len(s.Routes), MaxRoutes)
	}
	// A route makes the function the request's origin, which answers from
	// request_filter (or accepts a WebSocket): a module with neither would
	// be stored, and every gateway would leave its routes out (404).
	if len(s.Routes) > 0 && s.Phases.Valid() && !s.Phases.Has(protocol.PhaseRequestFilter) && !s.Phases.WebSocket() {
		bad("routes", "the module handles %s, neither request_filter nor WebSocket events, so it cannot answer a route: deploy it without routes and put it in front of routes as a plugin (gateway config)",
			strings.Join(s.Phases.Names(), ", "))
	}
	// Keyed as chi files patterns: "/a/{x}" and "/a/{y}" are one route.
	seen := make(map[string]int, len(s.Routes))
	for i, rt := range s.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		if msg := routeProblem(rt); msg != "" {
			bad(field, "%q: %s", truncate(rt, 40), msg)
			continue
		}
		key := protocol.RouteKey(rt)
		if j, dup := seen[key]; dup {
			if rt == s.Routes[j] {
				bad(field, "%q duplicates routes[%d]", rt, j)
			} else {
				bad(field, "%q is the same route as routes[%d] %q (only parameter names differ)", rt, j, s.Routes[j])
			}
		}
		seen[key] = i
	}

	if len(s.Config) > MaxConfigKeys {
		bad("config", "%d keys, at most %d", len(s.Config), MaxConfigKeys)
	}
	total := 0
	for _, k := range slices.Sorted(maps.Keys(s.Config)) {
		total += len(k) + len(s.Config[k])
		switch {
		case k == "":
			bad("config", "empty key")
		case len(k) > MaxConfigKeyLen:
			bad("config", "key %q is %d bytes, at most %d", truncate(k, 20), len(k), MaxConfigKeyLen)
		case !utf8.ValidString(k) || !utf8.ValidString(s.Config[k]):
			bad("config", "key %q: not valid UTF-8", truncate(k, 20))
		}
	}
	if total > MaxConfigBytes {
		bad("config", "%d bytes of keys and values, at most %d", total, MaxConfigBytes)
	}

	checkLimit := func(field string, v, hi int64) {
		if v < 0 || v > hi {
			bad("limits."+field, "%d out of range (0 = node default, else 1..%d)", v, hi)
		}
	}
	checkLimit("timeout_ms", int64(s.Limits.TimeoutMS), MaxTimeoutMS)
	checkLimit("memory_mb", int64(s.Limits.MemoryMB), MaxMemoryMB)
	checkLimit("max_workers", int64(s.Limits.MaxWorkers), MaxWorkers)
	checkLimit("max_body_bytes", s.Limits.MaxBodyBytes, MaxBodyBytesCap)

	if s.QueueGroup != "" {
		if msg := queueGroupProblem(s.QueueGroup); msg != "" {
			bad("queue_group", "%q: %s", truncate(s.QueueGroup, 40), msg)
		}
	}
	if len(s.Description) > MaxDescriptionLen {
		bad("description", "%d bytes, at most %d", len(s.Description), MaxDescriptionLen)
	} else if !utf8.ValidString(s.Description) {
		bad("description", "not valid UTF-8")
	}
	if len(s.CreatedBy) > MaxCreatedByLen {
		bad("created_by", "%d bytes, at most %d", len(s.CreatedBy), MaxCreatedByLen)
	} else if !utf8.ValidString(s.CreatedBy) {
		bad("created_by", "not valid UTF-8")
	}
	return errors.Join(errs...)
}

// routeProblem describes what is wrong with a route pattern, or returns "".
// Routes are gateway path patterns (chi syntax such as "/users/{id}" or
// "/static/*"), so only printable ASCII without query or fragment parts.
func routeProblem(rt string) string {
	switch {
	case rt == "":
		return "empty"
	case len(rt) > MaxRouteLen:
		return fmt.Sprintf("%d bytes, at most %d", len(rt), MaxRouteLen)
	case rt[0] != '/':
		return `must start with "/"`
	}
	for i := 0; i < len(rt); i++ {
		c := rt[i]
		if c <= ' ' || c >= 0x7f {
			return fmt.Sprintf("byte %#x at %d is not printable ASCII", c, i)
		}
		if c == '?' || c == '#' {
			return fmt.Sprintf("%q at %d: a route is a path, without query or fragment", c, i)
		}
	}
	// An HTTP listener built on http.ServeMux (nylon serve's) redirects a
	// path with empty, "." or ".." segments to its clean form, so a route
	// spelled that way would never match.
	segs := strings.Split(rt[1:], "/")
	for i, seg := range segs {
		if seg == "." || seg == ".." || seg == "" && i < len(segs)-1 {
			return fmt.Sprintf("segment %d %q: not a clean path (use %q); requests are redirected to the clean form, so this route would never match", i+1, seg, path.Clean(rt))
		}
	}
	return ""
}

// queueGroupProblem describes what is wrong with a NATS queue group name, or
// returns "". Dot-separated tokens of [A-Za-z0-9_-], as nats.go micro accepts.
func queueGroupProblem(q string) string {
	if len(q) > MaxQueueGroupLen {
		return fmt.Sprintf("%d bytes, at most %d", len(q), MaxQueueGroupLen)
	}
	tokenStart := true
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			tokenStart = false
		case c == '.' && !tokenStart && i != len(q)-1:
			tokenStart = true
		default:
			return fmt.Sprintf("character %q at %d (want dot-separated tokens of A-Z, a-z, 0-9, '_', '-')", c, i)
		}
	}
	return ""
}

// newRecord builds version v of a validated spec.
func newRecord(s Spec, v uint64, sha string, size int64, now time.Time) Record {
	qg := s.QueueGroup
	if qg == "" {
		qg = s.Name
	}
	return Record{
		Name:        s.Name,
		Version:     v,
		SHA256:      sha,
		Size:        size,
		Phases:      s.Phases.Names(),
		PhaseSet:    s.Phases,
		WS:          s.Phases.WebSocket(),
		Routes:      slices.Clone(s.Routes),
		Config:      maps.Clone(s.Config),
		Limits:      s.Limits,
		QueueGroup:  qg,
		CreatedAt:   now.UTC().Truncate(time.Millisecond),
		Description: s.Description,
		CreatedBy:   s.CreatedBy,
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
