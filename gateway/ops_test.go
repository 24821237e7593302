package gateway

import (
	"log/slog"
	"net/http"
	"slices"
	"testing"

	"github.com/nylon-functions/nylon/protocol"
)

func TestHeaderOpsRefuseUnsafeOnes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h := http.Header{"Content-Length": {"5"}}
	applyResponseHeaderOps(h, []protocol.Op{
		{Code: protocol.OpSetResponseHeader, Key: "X-Ok", Value: []byte("1")},
		{Code: protocol.OpSetResponseHeader, Key: "Content-Length", Value: []byte("99")},
		{Code: protocol.OpSetResponseHeader, Key: "X-Bad", Value: []byte("a\nb")},
		{Code: protocol.OpSetResponseHeader, Key: "Bad Name", Value: []byte("x")},
		{Code: protocol.OpRemoveResponseHeader, Key: "transfer-encoding"},
	}, log)
	if h.Get("X-Ok") != "1" || h.Get("Content-Length") != "5" || h.Get("X-Bad") != "" || len(h) != 2 {
		t.Fatalf("headers %v", h)
	}
	q := &protocol.HTTPRequest{Headers: []protocol.Header{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}, {Name: "B", Value: "3"}}}
	if !applyInvocationHeaderOp(q, &protocol.Op{Code: protocol.OpSetRequestHeader, Key: "x-a", Value: []byte("9")}, log) {
		t.Fatal("valid op refused")
	}
	if len(q.Headers) != 2 || q.Headers[1] != (protocol.Header{Name: "X-A", Value: "9"}) {
		t.Fatalf("invocation headers %v", q.Headers)
	}
	if applyInvocationHeaderOp(q, &protocol.Op{Code: protocol.OpSetRequestHeader, Key: "Host", Value: []byte("evil")}, log) {
		t.Fatal("Host mutation accepted")
	}
}

// TestResponseHeaderOpsApplyInOrder: op 402 appends a value where op 100
// replaces them, so the order of a reply's ops decides what is sent.
func TestResponseHeaderOpsApplyInOrder(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	set := func(v string) protocol.Op {
		return protocol.Op{Code: protocol.OpSetResponseHeader, Key: "Set-Cookie", Value: []byte(v)}
	}
	add := func(v string) protocol.Op {
		return protocol.Op{Code: protocol.OpAddResponseHeader, Key: "set-cookie", Value: []byte(v)}
	}
	del := protocol.Op{Code: protocol.OpRemoveResponseHeader, Key: "SET-COOKIE"}
	for _, tc := range []struct {
		name string
		had  []string // the response's values before the ops
		ops  []protocol.Op
		want []string
	}{
		{"set then add", nil, []protocol.Op{set("a=1"), add("b=2")}, []string{"a=1", "b=2"}},
		{"add then set", nil, []protocol.Op{add("a=1"), set("b=2")}, []string{"b=2"}},
		{"adds keep order", nil, []protocol.Op{add("a=1"), add("b=2"), add("c=3")}, []string{"a=1", "b=2", "c=3"}},
		{"add to the response's own", []string{"up=1"}, []protocol.Op{add("a=1")}, []string{"up=1", "a=1"}},
		{"set replaces the response's own", []string{"up=1", "up=2"}, []protocol.Op{set("a=1")}, []string{"a=1"}},
		{"remove deletes every value", []string{"up=1"}, []protocol.Op{add("a=1"), add("b=2"), del}, nil},
		{"add after remove", []string{"up=1"}, []protocol.Op{del, add("a=1")}, []string{"a=1"}},
		{"empty value added", nil, []protocol.Op{add("a=1"), add("")}, []string{"a=1", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.had {
				h.Add("Set-Cookie", v)
			}
			applyResponseHeaderOps(h, tc.ops, log)
			if got := h.Values("Set-Cookie"); !slices.Equal(got, tc.want) {
				t.Fatalf("Set-Cookie %q, want %q", got, tc.want)
			}
			// applyEndOps (a request_filter End, a function origin) applies
			// them the same way, among the status and body ops.
			h = http.Header{}
			for _, v := range tc.had {
				h.Add("Set-Cookie", v)
			}
			ops := append([]protocol.Op{{Code: protocol.OpSetResponseStatus, Num: 201}}, tc.ops...)
			ops = append(ops, protocol.Op{Code: protocol.OpSetResponseBody, Value: []byte("b")})
			status, body := applyEndOps(h, ops, log)
			if got := h.Values("Set-Cookie"); status != 201 || string(body) != "b" || !slices.Equal(got, tc.want) {
				t.Fatalf("applyEndOps: %d %q Set-Cookie %q, want 201 \"b\" %q", status, body, got, tc.want)
			}
		})
	}

	// An added value is checked like a set one: no framing headers, no
	// header split, no bad name.
	h := http.Header{"Content-Length": {"5"}}
	applyResponseHeaderOps(h, []protocol.Op{
		{Code: protocol.OpAddResponseHeader, Key: "Content-Length", Value: []byte("99")},
		{Code: protocol.OpAddResponseHeader, Key: "Transfer-Encoding", Value: []byte("chunked")},
		{Code: protocol.OpAddResponseHeader, Key: "X-Bad", Value: []byte("a\r\nInjected: 1")},
		{Code: protocol.OpAddResponseHeader, Key: "Bad Name", Value: []byte("x")},
		{Code: protocol.OpAddResponseHeader, Key: "X-Ok", Value: []byte("1")},
	}, log)
	if !slices.Equal(h.Values("Content-Length"), []string{"5"}) || h.Get("X-Ok") != "1" || len(h) != 2 {
		t.Fatalf("headers %v", h)
	}
}

func TestResponseBodyOpsInOrder(t *testing.T) {
	op := func(code uint32, v string) protocol.Op { return protocol.Op{Code: code, Value: []byte(v)} }
	for _, tc := range []struct {
		name string
		ops  []protocol.Op
		want string
		set  bool
	}{
		{"none", []protocol.Op{op(protocol.OpSetResponseHeader, "x")}, "", false},
		{"full body", []protocol.Op{op(protocol.OpSetResponseBody, "a"), op(protocol.OpSetResponseBody, "b")}, "b", true},
		{"chunks", []protocol.Op{op(protocol.OpSetStreamData, "1"), op(protocol.OpSetStreamData, "2")}, "12", true},
		{"stream starts afresh", []protocol.Op{op(protocol.OpSetResponseBody, "a"), op(protocol.OpSetStreamHeader, ""),
			op(protocol.OpSetStreamData, "1")}, "1", true},
		{"full body then chunk", []protocol.Op{op(protocol.OpSetResponseBody, "a"), op(protocol.OpSetStreamData, "b")}, "ab", true},
		{"nothing after end", []protocol.Op{op(protocol.OpSetStreamData, "a"), op(protocol.OpSetStreamEnd, ""),
			op(protocol.OpSetStreamData, "b"), op(protocol.OpSetResponseBody, "c")}, "a", true},
		{"empty stream", []protocol.Op{op(protocol.OpSetStreamHeader, ""), op(protocol.OpSetStreamEnd, "")}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b responseBody
			for i := range tc.ops {
				b.apply(&tc.ops[i])
			}
			if string(b.body) != tc.want || b.set != tc.set {
				t.Fatalf("body %q set %v, want %q %v", b.body, b.set, tc.want, tc.set)
			}
		})
	}

	// A 103's value is a slice of the reply's buffer, with the next ops'
	// bytes behind it: a chunk appended after it must not overwrite them.
	reply := []byte("aXYZ")
	ops := []protocol.Op{{Code: protocol.OpSetResponseBody, Value: reply[:1]}, {Code: protocol.OpSetStreamData, Value: []byte("b")}}
	var b responseBody
	for i := range ops {
		b.apply(&ops[i])
	}
	if string(b.body) != "ab" || string(reply) != "aXYZ" {
		t.Fatalf("body %q, reply buffer %q (want ab, aXYZ)", b.body, reply)
	}
}

// A reply may carry tens of thousands of small chunks (op 104): the body
// grows by appending, not by copying it whole for every chunk (which took
// the gateway seconds of CPU for a 1 MiB reply of 8-byte chunks).
func TestResponseBodyChunksAppendInLinearTime(t *testing.T) {
	ops := make([]protocol.Op, 0, 20001)
	ops = append(ops, protocol.Op{Code: protocol.OpSetResponseBody, Value: []byte("start")})
	for range 20000 {
		ops = append(ops, protocol.Op{Code: protocol.OpSetStreamData, Value: []byte("8 bytes!")})
	}
	var b responseBody
	allocs := testing.AllocsPerRun(1, func() {
		b = responseBody{}
		for i := range ops {
			b.apply(&ops[i])
		}
	})
	if len(b.body) != 5+20000*8 {
		t.Fatalf("body of %d bytes", len(b.body))
	}
	if allocs > 64 {
		t.Fatalf("%v allocations for 20000 chunks: the body is copied per chunk", allocs)
	}
}

// TestHeaderOpsRefuseControlValues: a header op whose value holds a control
// character other than HTAB (0x01, 0x7F, ...) is refused like one with CR,
// LF or NUL, whichever op carries it (100, 402, 400); a tab and obs-text
// pass, as RFC 9110 allows them.
func TestHeaderOpsRefuseControlValues(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	bad := []string{"a\x01b", "a\x7f", "\x08", "\x0b", "\x0c", "\x1b[31m", "\x1f", "a\r\nb", "\x00"}
	good := []string{"a\tb", "caf\xe9", "\xff", "", " sp "}
	for _, code := range []uint32{protocol.OpSetResponseHeader, protocol.OpAddResponseHeader} {
		for _, v := range bad {
			h := http.Header{}
			applyResponseHeaderOps(h, []protocol.Op{{Code: code, Key: "X-V", Value: []byte(v)}}, log)
			if len(h) != 0 {
				t.Errorf("op %d value %q applied: %q", code, v, h)
			}
			h = http.Header{}
			status, _ := applyEndOps(h, []protocol.Op{{Code: code, Key: "X-V", Value: []byte(v)}}, log)
			if len(h) != 0 || status != 200 {
				t.Errorf("End op %d value %q: status %d, headers %q", code, v, status, h)
			}
		}
		for _, v := range good {
			h := http.Header{}
			applyResponseHeaderOps(h, []protocol.Op{{Code: code, Key: "X-V", Value: []byte(v)}}, log)
			if got := h.Values("X-V"); !slices.Equal(got, []string{v}) {
				t.Errorf("op %d value %q: X-V %q", code, v, got)
			}
		}
	}
	for _, v := range bad {
		q := &protocol.HTTPRequest{Headers: []protocol.Header{{Name: "X-V", Value: "old"}}}
		if applyInvocationHeaderOp(q, &protocol.Op{Code: protocol.OpSetRequestHeader, Key: "X-V", Value: []byte(v)}, log) {
			t.Errorf("op 400 value %q accepted", v)
		}
		if len(q.Headers) != 1 || q.Headers[0].Value != "old" {
			t.Errorf("op 400 value %q changed the request: %q", v, q.Headers)
		}
	}
	for _, v := range good {
		q := &protocol.HTTPRequest{}
		if !applyInvocationHeaderOp(q, &protocol.Op{Code: protocol.OpSetRequestHeader, Key: "X-V", Value: []byte(v)}, log) ||
			len(q.Headers) != 1 || q.Headers[0].Value != v {
			t.Errorf("op 400 value %q: headers %q", v, q.Headers)
		}
	}
}
