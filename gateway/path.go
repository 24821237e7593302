package gateway

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/nylon-functions/nylon/protocol"
)

// canonicalRequest returns r with its path normalized, as nginx and
// Envoy's normalize_path and merge_slashes do: dot segments ("/./",
// "/../", and their percent-encoded forms "%2e", RFC 3986 6.2.2.2)
// resolved and repeated slashes merged. The route is chosen on that path,
// and it is the path the upstream, plugins and functions see. Otherwise
// "/public/../admin" would match "/public/*" and reach an upstream that
// resolves it to "/admin", past the plugins of the "/admin" route.
//
// ok is false when no normalization is faithful: a dot segment that only
// appears once "%2F" is decoded ("/public/..%2Fadmin"), which an upstream
// that decodes it would resolve and the gateway cannot tell apart. Such a
// request is refused (400).
//
// r itself is returned (no allocation) when its path is already canonical,
// the common case.
func canonicalRequest(r *http.Request) (_ *http.Request, ok bool) {
	u := r.URL
	// Escaping keeps every '/' and '.': RawPath, else Path, has the
	// escaped path's slashes without EscapedPath's allocation.
	p := u.RawPath
	if p == "" {
		p = u.Path
	}
	if !strings.HasPrefix(p, "/") {
		return r, true // "*" (OPTIONS), CONNECT's authority: chi answers
	}
	// Every dot segment, encoded or not, shows as "/." in the decoded path.
	if !strings.Contains(p, "//") && !strings.Contains(u.Path, "/.") {
		return r, true
	}
	esc := u.EscapedPath()
	clean := cleanEscapedPath(esc)
	decoded, err := url.PathUnescape(clean)
	if err != nil || hasDotSegment(decoded) {
		return r, false
	}
	if clean == esc {
		return r, true // "/.well-known": a dot, no dot segment
	}
	nu := *u
	nu.Path, nu.RawPath = decoded, ""
	if nu.EscapedPath() != clean {
		nu.RawPath = clean // keeps "%2F" and the like as the client sent them
	}
	r2 := *r
	r2.URL = &nu
	return &r2, true
}

// cleanEscapedPath resolves the dot segments of the escaped path p,
// percent-encoded dots included, and merges repeated slashes. A trailing
// slash stays, and a path ending in a dot segment ends in one ("/a/b/.."
// is "/a/"), as RFC 3986's remove_dot_segments has it.
func cleanEscapedPath(p string) string {
	segs := strings.Split(p, "/")
	trailing := false
	for i, s := range segs {
		if d := dotSegment(s); d != "" {
			segs[i] = d
			trailing = i == len(segs)-1
		}
	}
	joined := strings.Join(segs, "/")
	np := path.Clean(joined)
	if (trailing || strings.HasSuffix(p, "/")) && np != "/" {
		np += "/"
	}
	return np
}

// dotSegment returns "." or ".." when the escaped segment s is one of
// them, "%2e" counting as a dot; "" otherwise.
func dotSegment(s string) string {
	if len(s) == 0 || len(s) > 6 {
		return ""
	}
	d := strings.ReplaceAll(strings.ReplaceAll(s, "%2e", "."), "%2E", ".")
	if d == "." || d == ".." {
		return d
	}
	return ""
}

// hasDotSegment reports whether the decoded path p has a "." or ".."
// segment.
func hasDotSegment(p string) bool {
	for s := range strings.SplitSeq(p, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

// badPath answers a request whose path canonicalRequest refused.
func (g *Gateway) badPath(w http.ResponseWriter, r *http.Request) {
	g.met.httpRequests.WithLabelValues("", "400").Inc()
	g.answerUnrouted(w, r, Problem{Type: ProblemBadRequest, Title: "Bad Request", Status: http.StatusBadRequest,
		Detail: "the path has a dot segment behind an encoded slash", RequestID: protocol.NewRequestID().String()})
}
