package wasmhost_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// The abi guest runs a script of reads and writes (see its main.go) and
// reports each result; these tests compare the reports with the invocation.

const absent = "\x00absent" // a want that means "read returns -1"

// step is one script command and what its report line must say.
type step struct {
	cmd  []string
	want string // for reads: the value or absent; for writes: the result code
}

func read(method uint32, key, want string) step {
	return step{[]string{"r", strconv.FormatUint(uint64(method), 10), key}, want}
}

func write(method uint32, a, b string, rc int) step {
	return step{[]string{"w", strconv.FormatUint(uint64(method), 10), "hex:" + hex.EncodeToString([]byte(a)), "hex:" + hex.EncodeToString([]byte(b))}, strconv.Itoa(rc)}
}

// runScript calls the abi guest with steps as its script and checks every
// report line.
func runScript(t *testing.T, m *wasmhost.Module, phase protocol.Phase, event uint32, inv *protocol.Invocation, id protocol.RequestID, steps []step) wasmhost.Result {
	t.Helper()
	lines := make([]string, len(steps))
	for i, s := range steps {
		lines[i] = strings.Join(s.cmd, "\x1f")
	}
	inv.Config = append(inv.Config, protocol.KV{Key: "script", Value: strings.Join(lines, "\n")})
	res, err := m.Call(context.Background(), phase, event, inv, id)
	if err != nil {
		t.Fatalf("%s: %v", phase, err)
	}
	if strings.HasSuffix(res.Error, "…") && len(res.Error) >= wasmhost.MaxErrorText-4 {
		t.Fatalf("%s: the report was cut at wasmhost.MaxErrorText (%d bytes): split the script", phase, wasmhost.MaxErrorText)
	}
	report := strings.Split(strings.TrimSuffix(res.Error, "\n"), "\n")
	if len(report) != len(steps) {
		t.Fatalf("%s: %d report lines for %d steps: %q", phase, len(report), len(steps), res.Error)
	}
	for i, s := range steps {
		if got := decodeReport(t, report[i]); got != s.want {
			t.Errorf("%s: %q: got %q, want %q", phase, strings.Join(s.cmd, " "), got, s.want)
		}
	}
	return res
}

// decodeReport turns a report line into the value read (or absent) or the
// write's result code.
func decodeReport(t *testing.T, line string) string {
	t.Helper()
	f := strings.SplitN(line, " ", 3)
	switch {
	case f[0] == "p":
		return line
	case f[0] == "w" && len(f) == 2:
		return f[1]
	case f[0] == "r" && len(f) == 2 && f[1] == "-1":
		return absent
	case f[0] == "r" && len(f) == 3 && f[1] == "ERR":
		t.Errorf("the host broke the read contract: %s", f[2])
		return "ERR"
	case f[0] == "r":
		v := ""
		if len(f) == 3 {
			b, err := hex.DecodeString(f[2])
			if err != nil {
				t.Fatalf("report %q: %v", line, err)
			}
			v = string(b)
		}
		if n, _ := strconv.Atoi(f[1]); n != len(v) {
			t.Errorf("report %q: length %d for %d bytes", line, n, len(v))
		}
		return v
	}
	t.Fatalf("unexpected report line %q", line)
	return ""
}

func request() protocol.HTTPRequest {
	return protocol.HTTPRequest{
		Method:   "POST",
		Scheme:   "https",
		Host:     "api.example.com",
		Path:     "/users/42",
		Query:    "q=hello+world&x=1&q=second&e=%zz&sp%61ced=a%20b",
		ClientIP: "203.0.113.7",
		Headers: []protocol.Header{
			{Name: "Content-Type", Value: "application/json"},
			{Name: "X-Test", Value: "one"},
			{Name: "x-test", Value: "two"},
		},
		Body:      []byte(`{"a":1}`),
		Params:    []protocol.KV{{Key: "id", Value: "42"}, {Key: "org", Value: "acme"}},
		Timestamp: 1700000000123,
	}
}

func response() *protocol.HTTPResponse {
	return &protocol.HTTPResponse{
		Status: 201,
		Headers: []protocol.Header{
			{Name: "Content-Type", Value: "text/plain"},
			{Name: "Set-Cookie", Value: "a=1"},
		},
		Body:       []byte("hello body"),
		DurationMs: 17,
	}
}

func TestReadMethods(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "abi", testutil.Wasm(t, guestABI), wasmhost.Limits{})
	id := protocol.NewRequestID()
	wsAbsent := []step{
		read(protocol.ReadWSConnectionID, "", absent), read(protocol.ReadWSCloseCode, "", absent),
		read(protocol.ReadWSCloseReason, "", absent), read(protocol.ReadWSEvent, "", absent),
	}

	t.Run("request_filter", func(t *testing.T) {
		inv := &protocol.Invocation{Request: request(), Config: []protocol.KV{{Key: "greeting", Value: "hi"}}}
		steps := []step{
			{[]string{"p"}, "p 1 0"},
			read(protocol.MethodGetPayload, "", `{"a":1}`),
			read(protocol.ReadRequestFullBody, "", `{"a":1}`),
			read(protocol.ReadRequestHeader, "x-test", "one"),
			read(protocol.ReadRequestHeader, "X-TEST", "one"),
			read(protocol.ReadRequestHeader, "content-type", "application/json"),
			read(protocol.ReadRequestHeader, "missing", absent),
			read(protocol.ReadRequestHeader, "", absent),
			read(protocol.ReadRequestHeaders, "", "Content-Type\x00application/json\x00X-Test\x00one\x00x-test\x00two\x00"),
			read(protocol.ReadRequestURL, "", "/users/42?q=hello+world&x=1&q=second&e=%zz&sp%61ced=a%20b"),
			read(protocol.ReadRequestPath, "", "/users/42"),
			read(protocol.ReadRequestQuery, "", "q=hello+world&x=1&q=second&e=%zz&sp%61ced=a%20b"),
			read(protocol.ReadRequestParams, "", "id\x0042\x00org\x00acme\x00"),
			read(protocol.ReadRequestHost, "", "api.example.com"),
			read(protocol.ReadRequestClientIP, "", "203.0.113.7"),
			read(protocol.ReadRequestMethod, "", "POST"),
			read(protocol.ReadRequestBytes, "", "7"),
			read(protocol.ReadRequestTimestamp, "", "1700000000123"),
			read(protocol.ReadConfig, "greeting", "hi"),
			read(protocol.ReadConfig, "nope", absent),
			read(protocol.ReadRequestID, "", id.String()),
			read(protocol.ReadRequestParam, "org", "acme"),
			read(protocol.ReadRequestParam, "nope", absent),
			read(protocol.ReadRequestQueryParam, "q", "hello world"),
			read(protocol.ReadRequestQueryParam, "x", "1"),
			read(protocol.ReadRequestQueryParam, "spaced", "a b"),
			read(protocol.ReadRequestQueryParam, "e", absent), // does not decode: skipped like url.ParseQuery
			read(protocol.ReadRequestQueryParam, "nope", absent),
			read(protocol.ReadRequestScheme, "", "https"),
			// No response in request_filter.
			read(protocol.ReadResponseFullBody, "", absent),
			read(protocol.ReadResponseStatus, "", absent),
			read(protocol.ReadResponseBytes, "", absent),
			read(protocol.ReadResponseHeaders, "", absent),
			read(protocol.ReadResponseHeader, "content-type", absent),
			read(protocol.ReadResponseDuration, "", absent),
			read(protocol.ReadResponseError, "", absent),
			read(protocol.ReadBodyChunkInfo, "", absent),
			read(9999, "", absent),
		}
		steps = append(steps, wsAbsent...)
		// The full config list includes the script itself, so it is added
		// as the last step once the script is known.
		script := make([]string, 0, len(steps)+1)
		for _, s := range append(steps, read(protocol.ReadConfig, "", "")) {
			script = append(script, strings.Join(s.cmd, "\x1f"))
		}
		allConfig := "greeting\x00hi\x00script\x00" + strings.Join(script, "\n") + "\x00"
		steps = append(steps, read(protocol.ReadConfig, "", allConfig))
		runScript(t, m, protocol.PhaseRequestFilter, 0, inv, id, steps)
	})

	t.Run("response_filter", func(t *testing.T) {
		inv := &protocol.Invocation{Request: request(), Response: response()}
		runScript(t, m, protocol.PhaseResponseFilter, 0, inv, id, append([]step{
			read(protocol.MethodGetPayload, "", `{"a":1}`), // the request body outside the body filter
			read(protocol.ReadResponseFullBody, "", "hello body"),
			read(protocol.ReadResponseStatus, "", "201"),
			read(protocol.ReadResponseBytes, "", "10"),
			read(protocol.ReadResponseHeaders, "", "Content-Type\x00text/plain\x00Set-Cookie\x00a=1\x00"),
			read(protocol.ReadResponseHeader, "CONTENT-TYPE", "text/plain"),
			read(protocol.ReadResponseHeader, "nope", absent),
			read(protocol.ReadResponseDuration, "", "17"),
			read(protocol.ReadResponseError, "", absent),
			read(protocol.ReadBodyChunkInfo, "", absent),
			read(protocol.ReadRequestPath, "", "/users/42"),
		}, wsAbsent...))
	})

	t.Run("response_body_filter", func(t *testing.T) {
		resp := response()
		resp.Body, resp.ChunkIndex, resp.LastChunk = []byte("chunk-3"), 3, true
		inv := &protocol.Invocation{Request: request(), Response: resp}
		runScript(t, m, protocol.PhaseResponseBodyFilter, 0, inv, id, []step{
			read(protocol.MethodGetPayload, "", "chunk-3"),
			read(protocol.ReadBodyChunkInfo, "", "3,1"),
			read(protocol.ReadResponseBytes, "", "7"),
		})
		resp.ChunkIndex, resp.LastChunk = 0, false
		runScript(t, m, protocol.PhaseResponseBodyFilter, 0, &protocol.Invocation{Request: request(), Response: resp}, id, []step{
			read(protocol.ReadBodyChunkInfo, "", "0,0"),
		})
	})

	t.Run("logging", func(t *testing.T) {
		resp := response()
		resp.Error = "upstream reset"
		runScript(t, m, protocol.PhaseLogging, 0, &protocol.Invocation{Request: request(), Response: resp}, protocol.RequestID{}, []step{
			read(protocol.ReadResponseError, "", "upstream reset"),
			read(protocol.ReadRequestID, "", absent), // a zero id is absent
			read(protocol.ReadRequestMethod, "", "POST"),
		})
	})

	t.Run("events", func(t *testing.T) {
		text := &protocol.Invocation{
			Request: protocol.HTTPRequest{Method: "GET", Path: "/ws"},
			WS:      &protocol.WSEvent{Kind: protocol.WSText, ConnectionID: "c-1", Payload: []byte("hi there")},
		}
		runScript(t, m, protocol.PhaseEvent, protocol.EventWSText, text, id, []step{
			{[]string{"p"}, "p 0 351"},
			read(protocol.MethodGetPayload, "", "hi there"),
			read(protocol.ReadWSConnectionID, "", "c-1"),
			read(protocol.ReadWSEvent, "", "text"),
			read(protocol.ReadWSCloseCode, "", absent),
			read(protocol.ReadWSCloseReason, "", absent),
			read(protocol.ReadRequestPath, "", "/ws"),
			read(protocol.ReadResponseStatus, "", absent),
		})
		closing := &protocol.Invocation{
			WS: &protocol.WSEvent{Kind: protocol.WSClose, ConnectionID: "c-1", CloseCode: 1001, CloseReason: "going away"},
		}
		runScript(t, m, protocol.PhaseEvent, protocol.EventWSClose, closing, id, []step{
			read(protocol.MethodGetPayload, "", ""), // present, empty
			read(protocol.ReadWSCloseCode, "", "1001"),
			read(protocol.ReadWSCloseReason, "", "going away"),
			read(protocol.ReadWSEvent, "", "close"),
		})
	})
}

func TestWriteMethods(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "abi", testutil.Wasm(t, guestABI), wasmhost.Limits{MaxWorkers: 1})
	const (
		ok         = 0
		notAllowed = -1
		bad        = -3
		exclude    = 1 << 16
	)
	op := func(code uint32, key, value string, num int64) protocol.Op {
		o := protocol.Op{Code: code, Key: key, Num: num}
		if value != "" {
			o.Value = []byte(value)
		}
		return o
	}
	cases := []struct {
		phase protocol.Phase
		event uint32
		steps []step
		ops   []protocol.Op
	}{
		{protocol.PhaseRequestFilter, 0, []step{
			write(protocol.OpSetResponseHeader, "X-A", "1", ok),
			write(protocol.OpRemoveResponseHeader, "X-B", "", ok),
			write(protocol.OpSetResponseStatus, "418", "", ok),
			write(protocol.OpSetResponseBody, "body", "", ok),
			write(protocol.OpSetStreamHeader, "sh", "", ok),
			write(protocol.OpSetStreamData, "sd", "", ok),
			write(protocol.OpSetStreamEnd, "", "", ok),
			write(protocol.OpSetRequestHeader, "X-Up", "v", ok),
			write(protocol.OpRemoveRequestHeader, "X-Del", "", ok),
			write(protocol.OpAddResponseHeader, "Set-Cookie", "a=1", ok),
			write(protocol.OpAddResponseHeader, "Set-Cookie", "b=2", ok),
			write(protocol.MethodError, "replaced by the report", "", ok),
			write(protocol.OpSetResponseStatus, "99", "", bad),
			write(protocol.OpSetResponseStatus, "100", "", bad), // interim, not a final status
			write(protocol.OpSetResponseStatus, "101", "", bad),
			write(protocol.OpSetResponseStatus, "199", "", bad),
			write(protocol.OpSetResponseStatus, "600", "", bad), // no such HTTP status
			write(protocol.OpSetResponseStatus, "999", "", bad),
			write(protocol.OpSetResponseStatus, "1000", "", bad),
			write(protocol.OpSetResponseStatus, "200", "", ok),
			write(protocol.OpSetResponseStatus, "599", "", ok),
			write(protocol.OpSetResponseStatus, "2x0", "", bad),
			write(protocol.OpSetResponseStatus, "", "", bad),
			write(protocol.OpSetResponseHeader, "bad name", "v", bad),
			write(protocol.OpSetResponseHeader, "", "v", bad),
			write(protocol.OpSetResponseHeader, "X-C", "a\r\nInjected: 1", bad),
			write(protocol.OpSetRequestHeader, "X-C", "nul\x00", bad),
			write(protocol.OpRemoveRequestHeader, "", "", bad),
			write(protocol.OpSetResponseHeader|exclude, "X-D", "v", bad), // flag on a non-broadcast
			write(protocol.OpAddResponseHeader, "bad name", "v", bad),
			write(protocol.OpAddResponseHeader, "", "v", bad),
			write(protocol.OpAddResponseHeader, "Set-Cookie", "a=1\r\nInjected: 1", bad),
			write(protocol.OpAddResponseHeader|exclude, "X-D", "v", bad),
			write(9999, "a", "b", bad),
			write(0, "", "", bad),
			write(protocol.OpWSSendText, "hi", "", notAllowed),
			write(protocol.OpWSJoinRoom, "lobby", "", notAllowed),
		}, []protocol.Op{
			op(protocol.OpSetResponseHeader, "X-A", "1", 0),
			op(protocol.OpRemoveResponseHeader, "X-B", "", 0),
			op(protocol.OpSetResponseStatus, "", "", 418),
			op(protocol.OpSetResponseBody, "", "body", 0),
			op(protocol.OpSetStreamHeader, "", "sh", 0),
			op(protocol.OpSetStreamData, "", "sd", 0),
			op(protocol.OpSetStreamEnd, "", "", 0),
			op(protocol.OpSetRequestHeader, "X-Up", "v", 0),
			op(protocol.OpRemoveRequestHeader, "X-Del", "", 0),
			op(protocol.OpAddResponseHeader, "Set-Cookie", "a=1", 0),
			op(protocol.OpAddResponseHeader, "Set-Cookie", "b=2", 0),
			op(protocol.OpSetResponseStatus, "", "", 200),
			op(protocol.OpSetResponseStatus, "", "", 599),
		}},
		{protocol.PhaseResponseFilter, 0, []step{
			write(protocol.OpSetResponseHeader, "X-A", "1", ok),
			write(protocol.OpSetResponseStatus, "502", "", ok),
			write(protocol.OpAddResponseHeader, "Set-Cookie", "rf=1", ok),
			write(protocol.OpSetRequestHeader, "X-Up", "v", notAllowed),
			write(protocol.OpRemoveRequestHeader, "X-Up", "", notAllowed),
			write(protocol.OpWSSendBinary, "b", "", notAllowed),
		}, []protocol.Op{
			op(protocol.OpSetResponseHeader, "X-A", "1", 0),
			op(protocol.OpSetResponseStatus, "", "", 502),
			op(protocol.OpAddResponseHeader, "Set-Cookie", "rf=1", 0),
		}},
		{protocol.PhaseResponseBodyFilter, 0, []step{
			write(protocol.OpSetResponseBody, "new chunk", "", ok),
			write(protocol.OpSetStreamData, "+", "", ok),
			write(protocol.OpSetRequestHeader, "X-Up", "v", notAllowed),
			write(protocol.OpWSClose, "1000", "", notAllowed),
			// The gateway sent the status and headers before the first
			// chunk: header and status writes (a redirect too) are refused
			// rather than dropped unseen.
			write(protocol.OpSetResponseHeader, "X-Chunk", "1", notAllowed),
			write(protocol.OpRemoveResponseHeader, "Server", "", notAllowed),
			write(protocol.OpAddResponseHeader, "Set-Cookie", "a=1", notAllowed),
			write(protocol.OpSetResponseStatus, "201", "", notAllowed),
			write(protocol.OpSetResponseHeader, "Location", "/elsewhere", notAllowed),
			write(protocol.OpSetResponseStatus, "302", "", notAllowed),
		}, []protocol.Op{
			op(protocol.OpSetResponseBody, "", "new chunk", 0),
			op(protocol.OpSetStreamData, "", "+", 0),
		}},
		{protocol.PhaseLogging, 0, []step{
			write(protocol.OpSetResponseHeader, "X-A", "1", notAllowed),
			write(protocol.OpAddResponseHeader, "Set-Cookie", "a=1", notAllowed),
			write(protocol.OpSetResponseStatus, "200", "", notAllowed),
			write(protocol.OpSetResponseBody, "b", "", notAllowed),
			write(protocol.OpSetRequestHeader, "X-Up", "v", notAllowed),
			write(protocol.OpWSSendText, "hi", "", notAllowed),
			write(protocol.OpWSBroadcastText, "lobby", "m", notAllowed),
			write(protocol.MethodError, "ok in logging", "", ok),
		}, nil},
		{protocol.PhaseEvent, protocol.EventWSText, []step{
			write(protocol.OpWSSendText, "hi", "", ok),
			write(protocol.OpWSSendBinary, "\x00\x01", "", ok),
			write(protocol.OpWSJoinRoom, "lobby", "", ok),
			write(protocol.OpWSLeaveRoom, "old-room", "", ok),
			write(protocol.OpWSBroadcastText, "lobby", "to all", ok),
			write(protocol.OpWSBroadcastText|exclude, "lobby", "to others", ok),
			write(protocol.OpWSBroadcastBinary|exclude, "lobby", "\xff", ok),
			write(protocol.OpWSClose, "1000", "bye", ok),
			write(protocol.OpWSClose, "4999", "", ok),
			write(protocol.OpWSClose, "1003", "", ok),
			write(protocol.OpWSClose, "1007", "", ok),
			write(protocol.OpWSClose, "1014", "", ok),
			write(protocol.OpWSClose, "3000", "", ok),
			write(protocol.OpWSClose, "999", "", bad),
			write(protocol.OpWSClose, "5000", "", bad),
			// Codes a close frame may not carry (RFC 6455 7.4): the edge
			// would send 1000 instead, so the guest is told now.
			write(protocol.OpWSClose, "1004", "", bad),
			write(protocol.OpWSClose, "1005", "", bad),
			write(protocol.OpWSClose, "1006", "", bad),
			write(protocol.OpWSClose, "1015", "", bad),
			write(protocol.OpWSClose, "1016", "", bad),
			write(protocol.OpWSClose, "2999", "", bad),
			write(protocol.OpWSClose, "", "", bad),
			write(protocol.OpWSClose, "1000", strings.Repeat("r", 124), bad),
			write(protocol.OpWSJoinRoom, "bad.room", "", bad),
			write(protocol.OpWSJoinRoom, "", "", bad),
			write(protocol.OpWSLeaveRoom, "a b", "", bad),
			write(protocol.OpWSBroadcastText, "x>", "m", bad),
			write(protocol.OpWSBroadcastText|1<<17, "lobby", "m", bad),
			write(protocol.OpWSSendText|exclude, "hi", "", bad),
			write(protocol.OpSetResponseHeader, "X-A", "1", notAllowed),
			write(protocol.OpAddResponseHeader, "Set-Cookie", "a=1", notAllowed),
			write(protocol.OpSetRequestHeader, "X-A", "1", notAllowed),
		}, []protocol.Op{
			op(protocol.OpWSSendText, "", "hi", 0),
			op(protocol.OpWSSendBinary, "", "\x00\x01", 0),
			op(protocol.OpWSJoinRoom, "lobby", "", 0),
			op(protocol.OpWSLeaveRoom, "old-room", "", 0),
			op(protocol.OpWSBroadcastText, "lobby", "to all", 0),
			op(protocol.OpWSBroadcastText, "lobby", "to others", protocol.BroadcastExcludeSender),
			op(protocol.OpWSBroadcastBinary, "lobby", "\xff", protocol.BroadcastExcludeSender),
			op(protocol.OpWSClose, "", "bye", 1000),
			op(protocol.OpWSClose, "", "", 4999),
			op(protocol.OpWSClose, "", "", 1003),
			op(protocol.OpWSClose, "", "", 1007),
			op(protocol.OpWSClose, "", "", 1014),
			op(protocol.OpWSClose, "", "", 3000),
		}},
	}
	var kept []wasmhost.Result
	for _, tc := range cases {
		inv := &protocol.Invocation{Request: request()}
		if tc.phase != protocol.PhaseRequestFilter {
			inv.Response = response()
		}
		if tc.phase == protocol.PhaseEvent {
			inv.WS = &protocol.WSEvent{Kind: protocol.WSText, ConnectionID: "c-1", Payload: []byte("x")}
		}
		res := runScript(t, m, tc.phase, tc.event, inv, protocol.NewRequestID(), tc.steps)
		if res.Action != protocol.ActionEnd {
			t.Errorf("%s: action %v, want End", tc.phase, res.Action)
		}
		if !reflect.DeepEqual(res.Ops, tc.ops) {
			t.Errorf("%s: ops\n got %s\nwant %s", tc.phase, fmtOps(res.Ops), fmtOps(tc.ops))
		}
		kept = append(kept, res)
	}
	// Every call ran on the same instance (MaxWorkers 1); results handed out
	// earlier are unchanged, so they do not share the instance's buffers.
	for i, tc := range cases {
		if !reflect.DeepEqual(kept[i].Ops, tc.ops) {
			t.Errorf("%s: ops changed after later calls: %s", tc.phase, fmtOps(kept[i].Ops))
		}
	}
	if st := m.Stats(); st.Created != 1 {
		t.Errorf("stats %+v: want one instance for every call", st)
	}
}

func fmtOps(ops []protocol.Op) string {
	var b strings.Builder
	for _, o := range ops {
		fmt.Fprintf(&b, "{%d %q %q %d} ", o.Code, o.Key, o.Value, o.Num)
	}
	return b.String()
}

func TestWriteOutputLimit(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "abi", testutil.Wasm(t, guestABI), wasmhost.Limits{MaxOutput: 1000})
	wx := func(n int, rc int) step {
		return step{[]string{"wx", strconv.Itoa(int(protocol.OpSetResponseBody)), strconv.Itoa(n)}, strconv.Itoa(rc)}
	}
	// Each op counts its bytes plus 16: 916, then 116 more is over 1000,
	// 56 more is not, then 36 more is. The 20-byte report fits in the rest.
	res := runScript(t, m, protocol.PhaseRequestFilter, 0, &protocol.Invocation{}, protocol.RequestID{}, []step{
		wx(900, 0), wx(100, -2), wx(40, 0), wx(20, -2),
	})
	if len(res.Ops) != 2 || len(res.Ops[0].Value) != 900 || len(res.Ops[1].Value) != 40 {
		t.Fatalf("ops %s, want the two writes that fit", fmtOps(res.Ops))
	}
	// The error text does not count: with the output full to the last
	// byte, the report (the guest's error text) still arrives.
	res = runScript(t, m, protocol.PhaseRequestFilter, 0, &protocol.Invocation{}, protocol.RequestID{}, []step{
		wx(1000-16, 0), wx(0, -2),
	})
	if len(res.Ops) != 1 || len(res.Ops[0].Value) != 1000-16 {
		t.Fatalf("ops %s, want the write that filled the output", fmtOps(res.Ops))
	}
	// A text over wasmhost.MaxErrorText is cut to it on a rune boundary,
	// not refused: a report of 1500 lines of "p 1 0\n" (9000 bytes).
	steps := make([]string, 1500)
	for i := range steps {
		steps[i] = "p"
	}
	steps = append(steps, "wx\x1f103\x1f984")
	inv := &protocol.Invocation{Config: []protocol.KV{{Key: "script", Value: strings.Join(steps, "\n")}}}
	res, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, inv, protocol.RequestID{})
	if err != nil {
		t.Fatal(err)
	}
	full := strings.Repeat("p 1 0\n", 1500) + "w 0\n"
	if len(res.Error) > wasmhost.MaxErrorText || !strings.HasSuffix(res.Error, "…") ||
		!strings.HasPrefix(full, strings.TrimSuffix(res.Error, "…")) || len(res.Error) < wasmhost.MaxErrorText-4 {
		t.Fatalf("long report kept as %d bytes ending %q, want its first %d bytes, marked", len(res.Error), res.Error[max(0, len(res.Error)-8):], wasmhost.MaxErrorText)
	}
	if len(res.Ops) != 1 {
		t.Fatalf("ops %s, want the write that filled the output", fmtOps(res.Ops))
	}
}

// TestQueryReadsAgree: a guest that reads one query parameter
// (READ_REQUEST_QUERY_PARAM) finds what one parsing the whole query
// (READ_REQUEST_QUERY, then net/url.ParseQuery, as the Go SDK's Query does)
// finds. ParseQuery skips a pair holding ';' (Go 1.17+), so must the host.
func TestQueryReadsAgree(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "abi", testutil.Wasm(t, guestABI), wasmhost.Limits{})
	for _, q := range []string{"a=1;b=2", "a=1&a=2", "a", "a=", "%zz", "a=1&b=%3B", "a=1;b=2&a=3"} {
		parsed, _ := url.ParseQuery(q)
		steps := []step{read(protocol.ReadRequestQuery, "", q)}
		keys := []string{"a", "b", "%zz"}
		for k := range parsed {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			want := absent
			if vs := parsed[k]; len(vs) > 0 {
				want = vs[0]
			}
			steps = append(steps, read(protocol.ReadRequestQueryParam, k, want))
		}
		inv := &protocol.Invocation{Request: protocol.HTTPRequest{Method: "GET", Path: "/", Query: q}}
		runScript(t, m, protocol.PhaseRequestFilter, 0, inv, protocol.RequestID{}, steps)
	}
}
