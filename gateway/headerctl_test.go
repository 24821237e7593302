package gateway_test

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/protocol"
)

// ctlValues are header values with a control character other than HTAB
// that do not split a header (CR, LF and NUL are tested elsewhere): Go's
// net/http server writes them as they are, and a strict proxy in front of
// the gateway answers the response with 502.
var ctlValues = []string{"a\x01b", "del\x7f", "\x1b[31mred", "a\x0bb", "\x1f"}

// ctlOps returns, for each of ctlValues, a set (100) and an add (402) of a
// response header named X-Ctl-..., then the values that must pass: a tab
// inside and obs-text (0xE9).
func ctlOps(tag string) []protocol.Op {
	var ops []protocol.Op
	for i, v := range ctlValues {
		n := "X-Ctl-" + tag + "-" + string(rune('a'+i))
		ops = append(ops, respHeader(n, v), addHeader(n+"-Add", v))
	}
	return append(ops, respHeader("X-Tab-"+tag, "a\tb"), addHeader("X-Obs-"+tag, "caf\xe9"))
}

// ctlRawGet sends a GET for path on a connection of its own and returns the
// response's status line and header lines exactly as written: a Go client
// would refuse a response whose header holds a control character, which is
// what this test must see.
func ctlRawGet(t *testing.T, srvURL, path string) (statusLine string, lines []string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("GET %s: no end of header in %q", path, raw)
	}
	all := strings.Split(string(head), "\r\n")
	return all[0], all[1:]
}

// wantCleanHead fails t unless every header line is free of control
// characters other than HTAB, no X-Ctl-* header was sent, and the tab and
// obs-text values of tags were sent as they were written.
func wantCleanHead(t *testing.T, path, statusLine string, lines []string, tags ...string) {
	t.Helper()
	if !strings.HasPrefix(statusLine, "HTTP/1.1 200 ") {
		t.Fatalf("GET %s: status line %q, header %q", path, statusLine, lines)
	}
	for _, l := range lines {
		for i := 0; i < len(l); i++ {
			if c := l[i]; c < 0x20 && c != '\t' || c == 0x7f {
				t.Errorf("GET %s: header line %q holds control byte %#02x", path, l, c)
			}
		}
		if strings.HasPrefix(strings.ToLower(l), "x-ctl-") {
			t.Errorf("GET %s: refused header sent: %q", path, l)
		}
	}
	for _, tag := range tags {
		for _, want := range []string{"X-Tab-" + tag + ": a\tb", "X-Obs-" + tag + ": caf\xe9"} {
			found := false
			for _, l := range lines {
				found = found || l == want
			}
			if !found {
				t.Errorf("GET %s: no header line %q in %q", path, want, lines)
			}
		}
	}
}

// TestHeaderOpControlValuesRefused: a reply from a responder that is not a
// node (no ABI checked its ops) sets and adds response headers whose values
// hold a control character other than HTAB (0x01, 0x7F, ESC, VT, 0x1F) on
// every path a reply's header ops take: a request_filter End, a
// request_filter Next's deferred ops, a response_filter over an upstream,
// a function origin. None reaches the client; a tab and obs-text do. Its
// request-header ops (400) with such values reach neither later plugins
// nor the upstream, which still answers (net/http's client would refuse
// the whole request, a 502).
func TestHeaderOpControlValuesRefused(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("deny", protocol.PhaseRequestFilter, func(c *call) answer {
		return end(append(ctlOps("End"), body("denied"))...)
	})
	e.serve("tag", protocol.PhaseRequestFilter, func(c *call) answer {
		ops := ctlOps("Next")
		for i, v := range ctlValues {
			ops = append(ops, reqHeader("X-Up-Ctl-"+string(rune('a'+i)), v))
		}
		return next(append(ops, reqHeader("X-Up-Tab", "a\tb"), reqHeader("X-Up-Obs", "caf\xe9"))...)
	})
	seen := make(chan []protocol.Header, 1)
	e.serve("rf", protocol.PhaseResponseFilter, func(c *call) answer {
		seen <- c.Inv.Request.Headers
		return next(ctlOps("Rf")...)
	})
	e.serve("fn", protocol.PhaseRequestFilter, func(c *call) answer {
		return end(append(ctlOps("Fn"), body("fn"))...)
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: deny, messaging: nats, per_phase: {request_filter: {}}}
  - {name: tag, messaging: nats, per_phase: {request_filter: {}}}
  - {name: rf, messaging: nats, per_phase: {response_filter: {}}}
routes:
  - {path: /end, upstream: "` + up.URL + `", plugins: [deny]}
  - {path: /up, upstream: "` + up.URL + `", plugins: [tag, rf]}
  - {path: /fn, function: fn}
`)

	status, lines := ctlRawGet(t, srv.URL, "/end")
	wantCleanHead(t, "/end", status, lines, "End")

	status, lines = ctlRawGet(t, srv.URL, "/fn")
	wantCleanHead(t, "/fn", status, lines, "Fn")

	status, lines = ctlRawGet(t, srv.URL, "/up")
	wantCleanHead(t, "/up", status, lines, "Next", "Rf")
	got := up.last.Load()
	if got == nil {
		t.Fatal("the upstream was not called")
	}
	for name := range got.Header {
		if strings.HasPrefix(name, "X-Up-Ctl-") {
			t.Errorf("upstream got %s: %q", name, got.Header[name])
		}
	}
	if got.Header.Get("X-Up-Tab") != "a\tb" || got.Header.Get("X-Up-Obs") != "caf\xe9" {
		t.Errorf("upstream X-Up-Tab %q, X-Up-Obs %q; want \"a\\tb\", \"caf\\xe9\"", got.Header.Get("X-Up-Tab"), got.Header.Get("X-Up-Obs"))
	}
	var later []string
	for _, h := range <-seen {
		if strings.HasPrefix(h.Name, "X-Up-") {
			later = append(later, h.Name+": "+h.Value)
		}
	}
	if strings.Join(later, "|") != "X-Up-Tab: a\tb|X-Up-Obs: caf\xe9" {
		t.Errorf("response_filter saw request headers %q, want only X-Up-Tab and X-Up-Obs", later)
	}
}
