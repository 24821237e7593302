package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nylon-functions/nylon/protocol"
)

// Problem is an RFC 9457 problem detail, the body of every error the
// gateway answers itself (Content-Type application/problem+json).
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Problem type URIs. They are stable: clients may switch on them.
const (
	ProblemTimeout          = "https://nylon.dev/problems/timeout"
	ProblemNoResponder      = "https://nylon.dev/problems/no-responder"
	ProblemOverloaded       = "https://nylon.dev/problems/overloaded"
	ProblemBadReply         = "https://nylon.dev/problems/bad-reply"
	ProblemPluginError      = "https://nylon.dev/problems/plugin-error"
	ProblemNodeError        = "https://nylon.dev/problems/node-error"
	ProblemTooLarge         = "https://nylon.dev/problems/payload-too-large"
	ProblemOriginNotEnded   = "https://nylon.dev/problems/origin-not-ended"
	ProblemUpstream         = "https://nylon.dev/problems/upstream-unavailable"
	ProblemUpstreamTimeout  = "https://nylon.dev/problems/upstream-timeout"
	ProblemNotFound         = "https://nylon.dev/problems/not-found"
	ProblemMethodNotAllowed = "https://nylon.dev/problems/method-not-allowed"
	ProblemUpgradeRequired  = "https://nylon.dev/problems/upgrade-required"
	ProblemBadRequest       = "https://nylon.dev/problems/bad-request"
)

const contentTypeProblem = "application/problem+json"

// maxPluginDetail bounds the handler's own error text in a problem.
const maxPluginDetail = 200

// problemFor maps a failure to its problem. Details are short and name no
// internals beyond the phase; logs carry the rest under the same request_id.
// maxBody is the route's body limit, named when the body was too large.
func problemFor(err error, maxBody int64) Problem {
	var ce *CallError
	phase := "plugin"
	var rid string
	if errors.As(err, &ce) {
		phase = ce.Phase.String()
		if !ce.RequestID.IsZero() {
			rid = ce.RequestID.String()
		}
	}
	p := Problem{RequestID: rid}
	switch {
	case errors.Is(err, errBodyTooLarge), errors.Is(err, protocol.ErrTooLarge):
		p.Type, p.Title, p.Status = ProblemTooLarge, "Payload Too Large", http.StatusRequestEntityTooLarge
		p.Detail = tooLargeDetail(err, phase, maxBody)
	case errors.Is(err, errBadRequest):
		p.Type, p.Title, p.Status = ProblemBadRequest, "Bad Request", http.StatusBadRequest
		p.Detail = "the request body could not be read"
	case errors.Is(err, ErrOriginNotEnded):
		p.Type, p.Title, p.Status = ProblemOriginNotEnded, "Bad Gateway", http.StatusBadGateway
		p.Detail = "the origin function did not end the request"
	case errors.Is(err, errUpstreamTimeout):
		p.Type, p.Title, p.Status = ProblemUpstreamTimeout, "Gateway Timeout", http.StatusGatewayTimeout
		p.Detail = "the upstream did not answer in time"
	case errors.Is(err, errUpstream):
		p.Type, p.Title, p.Status = ProblemUpstream, "Bad Gateway", http.StatusBadGateway
		p.Detail = "the upstream could not be reached"
	case errors.Is(err, protocol.ErrTimeout):
		p.Type, p.Title, p.Status = ProblemTimeout, "Gateway Timeout", http.StatusGatewayTimeout
		p.Detail = phase + " timed out"
	case errors.Is(err, protocol.ErrNoResponder):
		p.Type, p.Title, p.Status = ProblemNoResponder, "Service Unavailable", http.StatusServiceUnavailable
		p.Detail = "no node serves " + phase
	case errors.Is(err, ErrOverloaded):
		p.Type, p.Title, p.Status = ProblemOverloaded, "Service Unavailable", http.StatusServiceUnavailable
		p.Detail = phase + " is overloaded, retry later"
	case errors.Is(err, ErrInternal):
		p.Type, p.Title, p.Status = ProblemNodeError, "Bad Gateway", http.StatusBadGateway
		p.Detail = "the node serving " + phase + " failed"
	case errors.Is(err, protocol.ErrDecode):
		p.Type, p.Title, p.Status = ProblemBadReply, "Bad Gateway", http.StatusBadGateway
		p.Detail = "invalid reply from " + phase
	case errors.Is(err, protocol.ErrPlugin):
		p.Type, p.Title, p.Status = ProblemPluginError, "Internal Server Error", http.StatusInternalServerError
		p.Detail = phase + " failed"
		var pe *protocol.PluginError
		if ce != nil && ce.Status >= 400 && ce.Status <= 599 {
			// The handler chose the status, so its message is meant for
			// the client.
			p.Status = ce.Status
			p.Title = http.StatusText(ce.Status)
			if errors.As(err, &pe) && pe.Message != "" {
				p.Detail = truncate(pe.Message, maxPluginDetail)
			}
		}
	default:
		p.Type, p.Title, p.Status = "about:blank", "Internal Server Error", http.StatusInternalServerError
	}
	if p.Title == "" {
		p.Title = "Error"
	}
	return p
}

// tooLargeDetail says which limit a too large request ran into. A request
// over what NATS carries cannot be sent at all: it is the client's to
// shrink, so it gets a 413 saying so, not a 502.
func tooLargeDetail(err error, phase string, maxBody int64) string {
	var tl *tooLargeError
	switch {
	case errors.Is(err, errBodyTooLarge):
		// The route's limit is what the client has to stay under.
		return fmt.Sprintf("the request body is larger than this route accepts (%d bytes at most)", maxBody)
	case errors.As(err, &tl) && tl.nats:
		return fmt.Sprintf("the request is %d bytes with its headers, over the %d bytes one NATS message may carry", tl.size, tl.limit)
	case errors.As(err, &tl):
		return fmt.Sprintf("the request is %d bytes with its headers, over the %d bytes %s accepts", tl.size, tl.limit, phase)
	case errors.Is(err, nats.ErrMaxPayload):
		return "the request with its headers is larger than one NATS message may carry"
	}
	return "the node serving " + phase + " refused the request as too large"
}

// writeProblem answers p as application/problem+json and returns the body
// bytes written.
func writeProblem(w http.ResponseWriter, p Problem) int64 {
	b, err := json.Marshal(p)
	if err != nil { // cannot happen: strings and ints only
		b = []byte(fmt.Sprintf(`{"type":"about:blank","status":%d}`, p.Status))
	}
	h := w.Header()
	h.Set("Content-Type", contentTypeProblem)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Encoding")
	if p.Type == ProblemOverloaded {
		h.Set("Retry-After", overloadedRetryAfterSec)
	}
	w.WriteHeader(p.Status)
	n, _ := w.Write(b)
	return int64(n)
}

// truncate keeps at most n bytes of s, cut on a rune boundary, and appends
// "..." when it cut: the result can be 3 bytes longer than n.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
