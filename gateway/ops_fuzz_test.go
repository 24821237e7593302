package gateway

import (
	"log/slog"
	"net/http"
	"slices"
	"testing"

	"github.com/nylon-functions/nylon/protocol"
)

// A reply's ops come from any responder on the subject, not only a node
// that checked them: whatever op list it sends, the response-header ops
// (100 set, 101 remove, 402 add) leave the framing and connection headers
// as the gateway had them, and write only token names and values that are
// RFC 9110 field values: no control character but HTAB (so none that could
// split a header, nor 0x01 or 0x7F, which strict proxies answer with 502),
// obs-text allowed. The ops reach these functions on every path a
// reply takes (request_filter Next and End, a function origin,
// response_filter).
func FuzzResponseHeaderOps(f *testing.F) {
	op := func(code uint32, k, v string) protocol.Op { return protocol.Op{Code: code, Key: k, Value: []byte(v)} }
	for _, ops := range [][]protocol.Op{
		{op(protocol.OpAddResponseHeader, "Set-Cookie", "a=1"), op(protocol.OpAddResponseHeader, "set-cookie", "b=2")},
		{op(protocol.OpAddResponseHeader, "Content-Length", "0"), op(protocol.OpAddResponseHeader, "Transfer-Encoding", "chunked"),
			op(protocol.OpAddResponseHeader, "connection", "close"), op(protocol.OpAddResponseHeader, "Upgrade", "h2c"),
			op(protocol.OpAddResponseHeader, "Trailer", "X"), op(protocol.OpAddResponseHeader, "Keep-Alive", "1"),
			op(protocol.OpAddResponseHeader, "TE", "trailers"), op(protocol.OpAddResponseHeader, "Proxy-Connection", "x")},
		{op(protocol.OpAddResponseHeader, "X-Fold", "a\r\n b"), op(protocol.OpAddResponseHeader, "X-Nul", "a\x00b"),
			op(protocol.OpAddResponseHeader, "Bad Name", "x"), op(protocol.OpAddResponseHeader, "", "x"),
			op(protocol.OpAddResponseHeader, "Trailer:X", "v")},
		{op(protocol.OpSetResponseHeader, "X-Soh", "a\x01b"), op(protocol.OpAddResponseHeader, "X-Del", "a\x7f"),
			op(protocol.OpAddResponseHeader, "X-Esc", "\x1b[31m"), op(protocol.OpSetResponseHeader, "X-Vt", "\x0b"),
			op(protocol.OpSetResponseHeader, "X-Tab", "a\tb"), op(protocol.OpAddResponseHeader, "X-Obs", "caf\xe9")},
		{op(protocol.OpSetResponseHeader, "X-A", "1"), op(protocol.OpAddResponseHeader, "X-A", "2"),
			op(protocol.OpRemoveResponseHeader, "content-length", ""), op(protocol.OpSetResponseStatus, "", "")},
		{{Code: protocol.OpSetResponseStatus, Num: 99}, op(protocol.OpSetResponseBody, "", "b"), op(protocol.OpAddResponseHeader, "X", "y")},
	} {
		f.Add(protocol.AppendOps(nil, ops))
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := protocol.DecodeOps(b, nil)
		if err != nil {
			return
		}
		start := func() http.Header {
			return http.Header{"Content-Length": {"5"}, "Set-Cookie": {"up=1"}}
		}
		h := start()
		applyResponseHeaderOps(h, ops, log)
		wantSafeHeaders(t, h)
		h = start()
		status, _ := applyEndOps(h, ops, log)
		wantSafeHeaders(t, h)
		if !protocol.ValidStatus(int64(status)) {
			t.Fatalf("applyEndOps status %d", status)
		}
	})
}

// wantSafeHeaders fails t unless h keeps Content-Length 5, has no other
// framing or connection header, and holds only token names and values
// without a control character other than HTAB. The value rule is spelt out
// here rather than taken from protocol.ValidHeaderValue, so the fuzzer
// checks that function too.
func wantSafeHeaders(t *testing.T, h http.Header) {
	t.Helper()
	if got := h["Content-Length"]; !slices.Equal(got, []string{"5"}) {
		t.Fatalf("Content-Length %q, want [5]", got)
	}
	for name, vs := range h {
		if name != "Content-Length" && reservedHeader(name) {
			t.Fatalf("reserved header %s: %q", name, vs)
		}
		if !protocol.ValidHeaderName(name) {
			t.Fatalf("header name %q is not a token", name)
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
					t.Fatalf("header %s value %q: control byte %#02x", name, v, c)
				}
			}
		}
	}
}
