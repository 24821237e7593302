package ws_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

// The client address and scheme a router in front of the edge resolved
// (the gateway's, behind trusted proxies) are the ones every event of the
// connection carries; the edge reads no X-Forwarded-* itself.
func TestWithClientIP(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "echo", false, echo)
	env := startEdgeWith(t, s, ws.Config{}, "echo", func(srv *httptest.Server) {
		h := srv.Config.Handler
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(ws.WithScheme(ws.WithClientIP(r.Context(), "198.51.100.4"), "https")))
		})
	})
	cl := dial(t, env.url("")).read()
	cl.send("hi")
	cl.waitFor("hi")
	open := rs.waitEvent(t, protocol.WSOpen, "")
	text := rs.waitEvent(t, protocol.WSText, open.conn())
	for _, ev := range []*event{open, text} {
		if got := ev.inv.Request.ClientIP; got != "198.51.100.4" {
			t.Errorf("%s event: client IP %q, want the one WithClientIP set", ev.kind(), got)
		}
		if got := ev.inv.Request.Scheme; got != "https" {
			t.Errorf("%s event: scheme %q, want the one WithScheme set", ev.kind(), got)
		}
	}

	// An empty one changes nothing: the TCP peer's.
	rs2 := respond(t, s, "echo2", false, echo)
	env = startEdgeWith(t, s, ws.Config{}, "echo2", func(srv *httptest.Server) {
		h := srv.Config.Handler
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(ws.WithScheme(ws.WithClientIP(r.Context(), ""), "")))
		})
	})
	dial(t, env.url("")).read()
	if got := rs2.waitEvent(t, protocol.WSOpen, "").inv.Request; got.ClientIP != "127.0.0.1" || got.Scheme != "http" {
		t.Errorf("WithClientIP(\"\"), WithScheme(\"\"): client IP %q and scheme %q, want the peer 127.0.0.1 and http", got.ClientIP, got.Scheme)
	}
}
