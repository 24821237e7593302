package protocol

import (
	"bytes"
	"encoding/hex"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.msgpack from the hand-annotated testdata/*.hex")

// parseHex reads the annotated hex format of testdata/*.hex: hex byte pairs
// separated by spaces, '#' starts a comment running to the end of the line.
func parseHex(t testing.TB, text string) []byte {
	t.Helper()
	var digits strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("parse hex: %v", err)
	}
	return b
}

// golden returns the bytes of testdata/name.msgpack after checking they equal
// the hand-written testdata/name.hex. With -update it first writes the
// .msgpack file from the .hex file (never from the encoder).
func golden(t testing.TB, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	want := parseHex(t, string(text))
	path := filepath.Join("testdata", name+".msgpack")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from %s.hex (run go test -run TestGolden -update)", path, name)
	}
	return got
}

// normalize returns a copy of v with every zero-length slice set to nil, so
// that values decoded into pooled (non-nil, empty) slices compare equal to
// literals.
func normalize[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	normalizeValue(rv)
	return v
}

func normalizeValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			c := reflect.New(v.Elem().Type())
			c.Elem().Set(v.Elem())
			normalizeValue(c.Elem())
			v.Set(c)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			normalizeValue(v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		for i := range c.Len() {
			normalizeValue(c.Index(i))
		}
		v.Set(c)
	}
}

func mustEqual[T any](t testing.TB, got, want T) {
	t.Helper()
	if g, w := normalize(got), normalize(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %#v\nwant %#v", g, w)
	}
}

var goldenID = RequestID{0x01, 0x8f, 0x3a, 0x5c, 0x7b, 0x2e, 0x7a, 0x11, 0x8c, 0x4d, 0x1e, 0x2f, 0x3a, 0x4b, 0x5c, 0x6d}

func goldenRequest() PluginRequest {
	return PluginRequest{Version: 1, RequestID: goldenID, SessionID: 300, Phase: PhaseRequestFilter,
		Method: 200, Data: []byte{1, 2, 3}, Timestamp: 1700000000000}
}

// goldenRequestWide is testdata/request_wide: the wider integer and bin forms.
func goldenRequestWide() PluginRequest {
	r := PluginRequest{Version: 1, SessionID: math.MaxUint32, Phase: PhaseEvent, Method: EventWSText,
		Data: make([]byte, 256)}
	for i := range r.RequestID {
		r.RequestID[i] = 0xff
	}
	for i := range r.Data {
		r.Data[i] = byte(i)
	}
	return r
}

func goldenResponse() PluginResponse {
	return PluginResponse{Version: 1, RequestID: goldenID, SessionID: 300, Action: ActionEnd, Data: []byte{0x90}}
}

func goldenResponseError() PluginResponse {
	return PluginResponse{Version: 1, SessionID: 7, Action: ActionError, Error: "boom"}
}

func goldenResponseNext() PluginResponse {
	return PluginResponse{Version: 1, RequestID: goldenID, SessionID: 1 << 16, Action: ActionNext,
		Data: []byte{0x91, 0x84, 0xa2, 'o', 'p', 0x66, 0xa3, 'k', 'e', 'y', 0xa0,
			0xa5, 'v', 'a', 'l', 'u', 'e', 0xc4, 0x00, 0xa3, 'n', 'u', 'm', 0xcc, 0xc9}}
}

// goldenOpsInts is testdata/ops_ints: num at every msgpack width boundary.
func goldenOpsInts() []Op {
	const room = "abcdefghijklmnopqrstuvwxyz012345"
	return []Op{
		{Code: OpSetResponseHeader, Key: "x-a", Value: []byte("1"), Num: -1},
		{Code: OpRemoveResponseHeader, Num: -32},
		{Code: OpSetResponseStatus, Num: -33},
		{Code: OpSetResponseBody, Num: math.MinInt8},
		{Code: OpSetStreamData, Num: math.MinInt8 - 1},
		{Code: OpSetStreamEnd, Value: []byte("x"), Num: math.MinInt16},
		{Code: OpSetStreamHeader, Num: math.MinInt16 - 1},
		{Code: OpWSSendText, Value: []byte("t"), Num: math.MinInt32},
		{Code: OpWSSendBinary, Num: math.MinInt32 - 1},
		{Code: OpWSClose, Num: math.MinInt64},
		{Code: OpWSJoinRoom, Key: room, Num: 127},
		{Code: OpWSLeaveRoom, Key: room, Num: 128},
		{Code: OpWSBroadcastText, Key: "r", Num: math.MaxUint8},
		{Code: OpWSBroadcastBinary, Key: "r", Num: math.MaxUint8 + 1},
		{Code: OpSetRequestHeader, Key: "x-b", Value: []byte("2"), Num: math.MaxUint16},
		{Code: OpRemoveRequestHeader, Key: "x-b", Num: math.MaxUint16 + 1},
		{Code: OpSetResponseHeader, Num: math.MaxUint32 + 1},
		{Code: OpSetResponseHeader, Num: math.MaxInt64},
	}
}

func goldenOps() []Op {
	return []Op{
		{Code: OpSetResponseHeader, Key: "content-type", Value: []byte("text/plain")},
		{Code: OpSetResponseStatus, Num: 404},
		{Code: OpWSClose, Value: []byte("bye"), Num: 1000},
		{Code: OpWSBroadcastText, Key: "lobby", Value: []byte("hi"), Num: BroadcastExcludeSender},
		{Code: OpRemoveRequestHeader, Key: "x-debug", Num: -200},
	}
}

func goldenInvocation() Invocation {
	return Invocation{
		Request: HTTPRequest{
			Method: "GET", Scheme: "https", Host: "example.com", Path: "/users/42", Query: "a=1",
			ClientIP:  "127.0.0.1",
			Headers:   []Header{{"host", "example.com"}, {"accept", "*/*"}},
			Body:      []byte("hi"),
			Params:    []KV{{"id", "42"}},
			Timestamp: 1700000000000,
		},
		Response: &HTTPResponse{Status: 200, Headers: []Header{{"content-type", "text/plain"}},
			Body: []byte("ok"), LastChunk: true, DurationMs: 12},
		Config: []KV{{"mode", "strict"}},
	}
}

func goldenInvocationWS() Invocation {
	return Invocation{WS: &WSEvent{Kind: WSText, ConnectionID: "c1", Payload: []byte("hey")}}
}

// goldenInvocationFull is testdata/invocation_full: every optional part set.
func goldenInvocationFull() Invocation {
	return Invocation{
		Request: HTTPRequest{
			Method: "GET", Scheme: "http", Host: "h", Path: "/a/very/long/path/over/thirty-one/bytes",
			ClientIP: "::1", Headers: []Header{{"a", ""}}, Params: []KV{{"a", "1"}, {"b", ""}},
			Timestamp: 1 << 31,
		},
		Response: &HTTPResponse{Status: 502, ChunkIndex: 3, DurationMs: 70000, Error: "reset"},
		WS:       &WSEvent{Kind: WSClose, ConnectionID: "c-9", CloseCode: 1001, CloseReason: "going away"},
		Config:   []KV{{"k", "v"}},
	}
}

// benchInvocation is the benchmark's context: 10 headers and a 1 KiB body.
func benchInvocation() Invocation {
	inv := goldenInvocation()
	inv.Response = nil
	inv.Request.Headers = []Header{
		{"host", "api.example.com"}, {"user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"},
		{"accept", "application/json"}, {"accept-encoding", "gzip, deflate, br"},
		{"accept-language", "en-US,en;q=0.9"}, {"content-type", "application/json"},
		{"authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig"},
		{"x-request-id", "018f3a5c-7b2e-7a11-8c4d-1e2f3a4b5c6d"},
		{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"cookie", "session=abc123; theme=dark"},
	}
	inv.Request.Body = bytes.Repeat([]byte("x"), 1024)
	return inv
}
