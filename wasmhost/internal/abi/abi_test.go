package abi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nylon-functions/nylon/protocol"
)

func newTestState(t *testing.T) (*State, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewState("fn", logger, NewLimiter(1000, 1000)), &buf
}

func TestReadCopiesOnlyWhenItFits(t *testing.T) {
	s, _ := newTestState(t)
	inv := &protocol.Invocation{Request: protocol.HTTPRequest{Path: "/abc"}}
	s.Begin(protocol.PhaseRequestFilter, 0, inv, protocol.RequestID{}, 1<<20)
	buf := []byte("xxxxxx")
	if n := s.read(protocol.ReadRequestPath, nil, buf[:3]); n != 4 || string(buf) != "xxxxxx" {
		t.Fatalf("short buffer: n=%d buf=%q", n, buf)
	}
	if n := s.read(protocol.ReadRequestPath, nil, buf); n != 4 || string(buf) != "/abcxx" {
		t.Fatalf("roomy buffer: n=%d buf=%q", n, buf)
	}
	s.Reset()
	if n := s.read(protocol.ReadRequestPath, nil, buf); n != -1 {
		t.Fatalf("read outside a call = %d, want -1", n)
	}
}

// The read path must not allocate: it runs for every value a handler reads.
func TestReadDoesNotAllocate(t *testing.T) {
	s, _ := newTestState(t)
	inv := &protocol.Invocation{
		Request: protocol.HTTPRequest{
			Path: "/p", Query: "a=1&b=2",
			Headers: []protocol.Header{{Name: "Accept", Value: "*/*"}, {Name: "X-Key", Value: "v"}},
			Body:    []byte("body"), Timestamp: 1,
		},
		Config: []protocol.KV{{Key: "k", Value: "v"}},
	}
	s.Begin(protocol.PhaseRequestFilter, 0, inv, protocol.NewRequestID(), 1<<20)
	buf := make([]byte, 256)
	key := []byte("x-key")
	allocs := testing.AllocsPerRun(100, func() {
		s.read(protocol.ReadRequestHeader, key, buf)
		s.read(protocol.ReadRequestHeaders, nil, buf)
		s.read(protocol.ReadRequestURL, nil, buf)
		s.read(protocol.ReadRequestTimestamp, nil, buf)
		s.read(protocol.ReadRequestID, nil, buf)
		s.read(protocol.ReadConfig, []byte("k"), buf)
		s.read(protocol.ReadRequestQueryParam, []byte("b"), buf)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run of reads, want 0", allocs)
	}
}

func TestQueryParam(t *testing.T) {
	cases := []struct{ query, key, want string }{
		{"a=1&b=2", "b", "2"},
		{"a=1&a=2", "a", "1"},
		{"a", "a", ""},
		{"&&a=1", "a", "1"},
		{"q=hello+world", "q", "hello world"},
		{"k%20ey=v%2F", "k ey", "v/"},
		{"a=%zz&a=ok", "a", "ok"},
		{"a=1", "b", "\x00"},
		{"", "a", "\x00"},
	}
	for _, c := range cases {
		got, ok := queryParam(c.query, []byte(c.key))
		if !ok {
			got = "\x00"
		}
		if got != c.want {
			t.Errorf("queryParam(%q, %q) = %q, want %q", c.query, c.key, got, c.want)
		}
	}
}

// TestQueryParamAgreesWithParseQuery: a guest may read one parameter
// (queryParam) or parse the raw query with net/url.ParseQuery; both must
// find the same parameters. ParseQuery (Go 1.17+) skips a pair holding a
// ';', so ?a=1;b=2 has no a, not a = "1;b=2".
func TestQueryParamAgreesWithParseQuery(t *testing.T) {
	queries := []string{
		"a=1;b=2", "a=1&a=2", "a", "a=", "%zz", "a=1&b=%3B",
		"a=1;b=2&a=3", "a;=1&a=2", "b=;&a=x", "a=%3B;", "&;&a=1",
	}
	keys := []string{"a", "b", "%zz", "zz", ";", "a;", "b=2"}
	for _, q := range queries {
		m, _ := url.ParseQuery(q)
		ks := slices.Clone(keys)
		for k := range m {
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
		for _, k := range ks {
			want, wantOK := "", false
			if vs := m[k]; len(vs) > 0 {
				want, wantOK = vs[0], true
			}
			got, ok := queryParam(q, []byte(k))
			if ok != wantOK || got != want {
				t.Errorf("query %q key %q: queryParam = %q, %v; url.ParseQuery = %q, %v", q, k, got, ok, want, wantOK)
			}
		}
	}
}

func TestWriteRefusesHeadersInBodyFilter(t *testing.T) {
	s, _ := newTestState(t)
	for _, phase := range []protocol.Phase{protocol.PhaseRequestFilter, protocol.PhaseResponseFilter, protocol.PhaseResponseBodyFilter} {
		s.Begin(phase, 0, &protocol.Invocation{}, protocol.RequestID{}, 1<<20)
		// The status and headers went out before the first chunk.
		want := ResultOK
		if phase == protocol.PhaseResponseBodyFilter {
			want = ResultNotAllowed
		}
		for _, w := range []struct {
			code uint32
			a, b string
		}{
			{protocol.OpSetResponseHeader, "Location", "/elsewhere"},
			{protocol.OpRemoveResponseHeader, "Server", ""},
			{protocol.OpAddResponseHeader, "Set-Cookie", "a=1"},
			{protocol.OpSetResponseStatus, "302", ""},
		} {
			if rc := s.write(w.code, []byte(w.a), []byte(w.b)); rc != want {
				t.Errorf("%s: write(%d) = %d, want %d", phase, w.code, rc, want)
			}
		}
		// The body ops replace or extend the chunk in every one of them.
		for _, code := range []uint32{protocol.OpSetResponseBody, protocol.OpSetStreamHeader, protocol.OpSetStreamData, protocol.OpSetStreamEnd} {
			if rc := s.write(code, []byte("x"), nil); rc != ResultOK {
				t.Errorf("%s: write(%d) = %d, want OK", phase, code, rc)
			}
		}
		s.Finish()
		s.Reset()
	}
}

// TestWriteAddResponseHeader: op 402 (add a response header value) is
// allowed and checked exactly as op 100 (set) is, in every phase, and
// keeps each value as an op of its own, in write order.
func TestWriteAddResponseHeader(t *testing.T) {
	s, _ := newTestState(t)
	phases := []struct {
		phase protocol.Phase
		event uint32
	}{
		{protocol.PhaseRequestFilter, 0}, {protocol.PhaseResponseFilter, 0}, {protocol.PhaseResponseBodyFilter, 0},
		{protocol.PhaseLogging, 0}, {protocol.PhaseEvent, protocol.EventWSOpen}, {protocol.PhaseEvent, protocol.EventWSText},
	}
	args := []struct{ name, value string }{
		{"Set-Cookie", "a=1; Path=/"}, {"set-cookie", ""}, {"bad name", "v"}, {"", "v"},
		{"X-Split", "a\r\nInjected: 1"}, {"X-Nul", "a\x00"}, {"X-Obs", "caf\xe9"},
		{"X-Soh", "a\x01b"}, {"X-Del", "a\x7f"}, {"X-Tab", "a\tb"},
	}
	for _, p := range phases {
		for _, a := range args {
			s.Begin(p.phase, p.event, &protocol.Invocation{}, protocol.RequestID{}, 1<<20)
			set := s.write(protocol.OpSetResponseHeader, []byte(a.name), []byte(a.value))
			s.Reset()
			s.Begin(p.phase, p.event, &protocol.Invocation{}, protocol.RequestID{}, 1<<20)
			add := s.write(protocol.OpAddResponseHeader, []byte(a.name), []byte(a.value))
			s.Reset()
			if add != set {
				t.Errorf("%s event %d: add(%q, %q) = %d, set = %d: want the same answer", p.phase, p.event, a.name, a.value, add, set)
			}
		}
	}
	// The refusals themselves, not only their agreement with op 100.
	for _, tc := range []struct {
		phase protocol.Phase
		want  int32
	}{
		{protocol.PhaseRequestFilter, ResultOK}, {protocol.PhaseResponseFilter, ResultOK},
		{protocol.PhaseResponseBodyFilter, ResultNotAllowed}, {protocol.PhaseLogging, ResultNotAllowed},
		{protocol.PhaseEvent, ResultNotAllowed},
	} {
		s.Begin(tc.phase, 0, &protocol.Invocation{}, protocol.RequestID{}, 1<<20)
		if rc := s.write(protocol.OpAddResponseHeader, []byte("Set-Cookie"), []byte("a=1")); rc != tc.want {
			t.Errorf("%s: add = %d, want %d", tc.phase, rc, tc.want)
		}
		s.Reset()
	}

	s.Begin(protocol.PhaseResponseFilter, 0, &protocol.Invocation{}, protocol.RequestID{}, 1<<20)
	for _, w := range []struct {
		code uint32
		v    string
	}{{protocol.OpSetResponseHeader, "a=1"}, {protocol.OpAddResponseHeader, "b=2"}, {protocol.OpAddResponseHeader, "c=3"}} {
		if rc := s.write(w.code, []byte("Set-Cookie"), []byte(w.v)); rc != ResultOK {
			t.Fatalf("write(%d, %q) = %d", w.code, w.v, rc)
		}
	}
	if rc := s.write(protocol.OpAddResponseHeader|FlagBroadcastExclude, []byte("X"), []byte("v")); rc != ResultBadArgument {
		t.Fatalf("add with the broadcast flag = %d, want %d", rc, ResultBadArgument)
	}
	ops, _ := s.Finish()
	s.Reset()
	want := []protocol.Op{
		{Code: protocol.OpSetResponseHeader, Key: "Set-Cookie", Value: []byte("a=1")},
		{Code: protocol.OpAddResponseHeader, Key: "Set-Cookie", Value: []byte("b=2")},
		{Code: protocol.OpAddResponseHeader, Key: "Set-Cookie", Value: []byte("c=3")},
	}
	if len(ops) != len(want) {
		t.Fatalf("ops %+v, want %+v", ops, want)
	}
	for i := range want {
		if ops[i].Code != want[i].Code || ops[i].Key != want[i].Key || !bytes.Equal(ops[i].Value, want[i].Value) || ops[i].Num != 0 {
			t.Errorf("op %d = %+v, want %+v", i, ops[i], want[i])
		}
	}
}

func TestWriteCloseCodes(t *testing.T) {
	s, _ := newTestState(t)
	s.Begin(protocol.PhaseEvent, protocol.EventWSText, &protocol.Invocation{}, protocol.RequestID{}, 1<<20)
	for code := int64(0); code <= 5001; code++ {
		want := ResultBadArgument
		if protocol.ValidCloseCode(code) {
			want = ResultOK
		}
		a := []byte(strconv.FormatInt(code, 10))
		if rc := s.write(protocol.OpWSClose, a, nil); rc != want {
			t.Errorf("close %d: write = %d, want %d", code, rc, want)
		}
	}
	// What the edge sends for sure, and what it would replace with 1000.
	for code, want := range map[string]int32{
		"1000": ResultOK, "1003": ResultOK, "1007": ResultOK, "1014": ResultOK, "3000": ResultOK, "4999": ResultOK,
		"1004": ResultBadArgument, "1005": ResultBadArgument, "1006": ResultBadArgument, "1015": ResultBadArgument,
		"1016": ResultBadArgument, "2999": ResultBadArgument, "999": ResultBadArgument, "5000": ResultBadArgument,
	} {
		if rc := s.write(protocol.OpWSClose, []byte(code), nil); rc != want {
			t.Errorf("close %s: write = %d, want %d", code, rc, want)
		}
	}
}

// TestErrorTextOutsideOutputLimit: the error text has room of its own, so
// a handler whose output is full can still say why it fails; a text over
// MaxErrorText is cut on a rune boundary rather than refused.
func TestErrorTextOutsideOutputLimit(t *testing.T) {
	s, _ := newTestState(t)
	s.Begin(protocol.PhaseRequestFilter, 0, &protocol.Invocation{}, protocol.RequestID{}, 100)
	if rc := s.write(protocol.OpSetResponseBody, make([]byte, 100-OpOverhead), nil); rc != ResultOK {
		t.Fatalf("filling the output: %d", rc)
	}
	if rc := s.write(protocol.OpSetStreamEnd, nil, nil); rc != ResultTooLarge {
		t.Fatalf("output not full: %d", rc)
	}
	msg := "upstream said no: " + strings.Repeat("z", 200)
	if rc := s.write(protocol.MethodError, []byte(msg), nil); rc != ResultOK {
		t.Fatalf("error text with the output full: %d, want OK", rc)
	}
	// A later text replaces it, and the output limit is untouched by either.
	long := strings.Repeat("é", MaxErrorText) // twice MaxErrorText bytes
	if rc := s.write(protocol.MethodError, []byte(long), nil); rc != ResultOK {
		t.Fatalf("long error text: %d, want OK", rc)
	}
	if rc := s.write(protocol.OpSetStreamEnd, nil, nil); rc != ResultTooLarge {
		t.Fatalf("the error text freed output room: %d", rc)
	}
	ops, errText := s.Finish()
	if len(ops) != 1 {
		t.Fatalf("%d ops, want 1", len(ops))
	}
	if len(errText) > MaxErrorText || !utf8.ValidString(errText) || !strings.HasSuffix(errText, "…") ||
		!strings.HasPrefix(long, strings.TrimSuffix(errText, "…")) || len(errText) < MaxErrorText-utf8.UTFMax {
		t.Fatalf("long error text kept as %d bytes ending %q", len(errText), errText[max(0, len(errText)-8):])
	}
	s.Reset()

	// A text that is not UTF-8 is still kept, cut at the byte count.
	s.Begin(protocol.PhaseRequestFilter, 0, &protocol.Invocation{}, protocol.RequestID{}, 100)
	s.write(protocol.MethodError, bytes.Repeat([]byte{0x80}, 2*MaxErrorText), nil)
	if _, errText := s.Finish(); len(errText) < MaxErrorText-utf8.UTFMax || len(errText) > MaxErrorText {
		t.Fatalf("non-UTF-8 error text kept as %d bytes", len(errText))
	}
	s.Reset()

	// A text of exactly MaxErrorText bytes is kept whole.
	s.Begin(protocol.PhaseLogging, 0, &protocol.Invocation{}, protocol.RequestID{}, 0)
	exact := strings.Repeat("e", MaxErrorText)
	if rc := s.write(protocol.MethodError, []byte(exact), nil); rc != ResultOK {
		t.Fatalf("error text with no output limit: %d", rc)
	}
	if _, errText := s.Finish(); errText != exact {
		t.Fatalf("text of MaxErrorText bytes kept as %d bytes", len(errText))
	}
}

func TestFinishDoesNotAlias(t *testing.T) {
	s, _ := newTestState(t)
	s.Begin(protocol.PhaseRequestFilter, 0, &protocol.Invocation{}, protocol.RequestID{}, 1<<20)
	s.write(protocol.OpSetResponseHeader, []byte("a"), []byte("1"))
	s.write(protocol.OpSetResponseHeader, []byte("b"), []byte("2"))
	ops, _ := s.Finish()
	s.Reset()
	s.Begin(protocol.PhaseRequestFilter, 0, &protocol.Invocation{}, protocol.RequestID{}, 1<<20)
	s.write(protocol.OpSetResponseHeader, []byte("x"), []byte("9"))
	s.write(protocol.OpSetResponseHeader, []byte("y"), []byte("8"))
	if ops[0].Key != "a" || string(ops[0].Value) != "1" || ops[1].Key != "b" || string(ops[1].Value) != "2" {
		t.Fatalf("earlier ops changed: %+v", ops)
	}
	// Values are capped: appending to one cannot overwrite the next.
	_ = append(ops[0].Value, '!')
	if string(ops[1].Value) != "2" {
		t.Fatalf("append to op 0 overwrote op 1: %q", ops[1].Value)
	}
	if ops, errText := func() ([]protocol.Op, string) {
		s.Reset()
		s.Begin(0, 0, nil, protocol.RequestID{}, 10)
		return s.Finish()
	}(); ops != nil || errText != "" {
		t.Fatalf("empty call: %v %q", ops, errText)
	}
}

func TestResetDropsBigBuffers(t *testing.T) {
	s, _ := newTestState(t)
	s.Begin(protocol.PhaseRequestFilter, 0, &protocol.Invocation{}, protocol.RequestID{}, 1<<30)
	s.write(protocol.OpSetResponseBody, make([]byte, maxKeptBuffer+1), nil)
	s.Finish()
	s.Reset()
	if s.vals != nil || s.inv != nil {
		t.Fatal("Reset kept a big value buffer or the invocation")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLimiter(10, 3)
	l.now = func() time.Time { return now }
	l.last = now
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow(); !ok {
			t.Fatalf("burst record %d refused", i)
		}
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.allow(); ok {
			t.Fatal("record past the burst allowed")
		}
	}
	if l.Dropped() != 5 {
		t.Fatalf("dropped %d, want 5", l.Dropped())
	}
	now = now.Add(100 * time.Millisecond) // one token at 10/s
	if ok, dropped := l.allow(); !ok || dropped != 5 {
		t.Fatalf("after refill: ok=%v dropped=%d, want true 5", ok, dropped)
	}
	if ok, _ := l.allow(); ok {
		t.Fatal("second record after one token allowed")
	}
	now = now.Add(time.Hour) // refills only up to the burst
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow(); !ok {
			t.Fatalf("record %d after a long pause refused", i)
		}
	}
	if ok, _ := l.allow(); ok {
		t.Fatal("burst exceeded after a long pause")
	}
}

func TestOutputLines(t *testing.T) {
	s, buf := newTestState(t)
	o := NewOutput(s, "stdout", slog.LevelInfo)
	o.Write([]byte("one\ntw"))
	o.Write([]byte("o\n\nthree\n"))
	o.Write([]byte(strings.Repeat("é", MaxLogLine) + "\n"))
	o.Flush()
	var texts []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct {
			Msg, Stream, Text, Function string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Msg != "guest output" || rec.Stream != "stdout" || rec.Function != "" {
			t.Fatalf("record %s", line)
		}
		texts = append(texts, rec.Text)
	}
	// The blank line is skipped.
	if len(texts) != 4 || texts[0] != "one" || texts[1] != "two" || texts[2] != "three" {
		t.Fatalf("lines %q", texts)
	}
	long := texts[3]
	if want := strings.Repeat("é", MaxLogLine/2) + "…"; long != want {
		t.Fatalf("long line: %d bytes, want %d whole runes and an ellipsis", len(long), MaxLogLine/2)
	}
}

func TestClipKeepsRunes(t *testing.T) {
	msg := []byte(strings.Repeat("a", MaxLogLine-1) + "é")
	got := clip(msg)
	if got != strings.Repeat("a", MaxLogLine-1)+"…" {
		t.Fatalf("clip cut inside a rune: %q", got[len(got)-8:])
	}
}
