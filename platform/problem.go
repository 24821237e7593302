package platform

import (
	"encoding/json"
	"net/http"
)

// Problem is an RFC 9457 problem detail: the body of every error the admin
// API answers, with Content-Type application/problem+json.
type Problem struct {
	// Type is a stable URI naming the kind of problem (the Problem*
	// constants); clients may switch on it.
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Instance is the request path the problem occurred on.
	Instance string `json:"instance,omitempty"`
	// RequestID matches the X-Request-Id response header and the access log.
	RequestID string `json:"request_id,omitempty"`
	// Option names the query option or spec field at fault, when one is.
	Option string `json:"option,omitempty"`
	// Conflicts lists, in a route-conflict problem, each route asked for
	// and who holds it.
	Conflicts []RouteConflict `json:"conflicts,omitempty"`
}

// Problem type URIs of the admin API. They are stable.
const (
	ProblemBadRequest       = "https://nylon.dev/problems/bad-request"
	ProblemInvalidName      = "https://nylon.dev/problems/invalid-name"
	ProblemInvalidOption    = "https://nylon.dev/problems/invalid-option"
	ProblemInvalidSpec      = "https://nylon.dev/problems/invalid-spec"
	ProblemInvalidModule    = "https://nylon.dev/problems/invalid-module"
	ProblemTooLarge         = "https://nylon.dev/problems/payload-too-large"
	ProblemBodyTimeout      = "https://nylon.dev/problems/body-timeout"
	ProblemUnsupportedMedia = "https://nylon.dev/problems/unsupported-media-type"
	ProblemUnauthorized     = "https://nylon.dev/problems/unauthorized"
	ProblemNotFound         = "https://nylon.dev/problems/not-found"
	ProblemMethodNotAllowed = "https://nylon.dev/problems/method-not-allowed"
	ProblemConflict         = "https://nylon.dev/problems/conflict"
	ProblemCorruptModule    = "https://nylon.dev/problems/corrupt-module"
	ProblemRouteConflict    = "https://nylon.dev/problems/route-conflict"
	ProblemUnavailable      = "https://nylon.dev/problems/unavailable"
	ProblemInternal         = "https://nylon.dev/problems/internal"
)

// contentTypeProblem is the media type of a Problem body.
const contentTypeProblem = "application/problem+json"

// writeProblem answers r with p, filling Status's title, the instance and
// the request id when p leaves them empty.
func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	if p.RequestID == "" {
		p.RequestID = RequestID(r.Context())
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nylon"`)
	}
	w.Header().Set("Content-Type", contentTypeProblem)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // the client went away if this fails
}

// problem builds a Problem of type typ and status.
func problem(typ string, status int, detail string) Problem {
	return Problem{Type: typ, Status: status, Detail: detail}
}

// writeJSON answers r with v as JSON and status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away if this fails
}
