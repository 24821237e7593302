package examplestest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// call is one invocation: the protocol.Invocation (and request id) the node
// would hand wasmhost, built from a table of read methods and values, and
// what the guest wrote.
type call struct {
	phase protocol.Phase
	event uint32
	inv   protocol.Invocation
	reqID protocol.RequestID

	// bad collects values the builder could not put into the invocation
	// (an unknown method, a number that does not parse, a derived read that
	// disagrees with its source); run fails the test with them, so a table
	// cannot silently ask for something wasmhost would never answer.
	bad []string

	ops     []op
	errText string
}

// op is one write the guest made, flattened for comparison: the method, its
// flags (BroadcastExcludeSender) and its two string arguments as the guest
// passed them.
type op struct {
	Method uint32
	Flags  uint32
	A, B   string
}

func (o op) String() string { return fmt.Sprintf("%d/%d(%q, %q)", o.Method, o.Flags, o.A, o.B) }

// opOf turns a wasmhost op back into the guest's write arguments: numbers
// (status, close code) were parsed by the host and are printed again.
func opOf(o protocol.Op) op {
	switch o.Code {
	case protocol.OpSetResponseStatus:
		return op{Method: o.Code, A: strconv.FormatInt(o.Num, 10)}
	case protocol.OpWSClose:
		return op{Method: o.Code, A: strconv.FormatInt(o.Num, 10), B: string(o.Value)}
	case protocol.OpSetResponseHeader, protocol.OpAddResponseHeader, protocol.OpSetRequestHeader,
		protocol.OpRemoveResponseHeader, protocol.OpRemoveRequestHeader,
		protocol.OpWSJoinRoom, protocol.OpWSLeaveRoom:
		return op{Method: o.Code, A: o.Key, B: string(o.Value)}
	case protocol.OpWSBroadcastText, protocol.OpWSBroadcastBinary:
		return op{Method: o.Code, Flags: uint32(o.Num), A: o.Key, B: string(o.Value)}
	}
	// Bodies, stream data and WebSocket sends carry their one argument in
	// Value.
	return op{Method: o.Code, A: string(o.Value)}
}

// logRecord is one record the guest logged through the log import.
type logRecord struct {
	Level int32
	Text  string
}

// newCall starts a call of phase with no values.
func newCall(phase protocol.Phase) *call {
	c := &call{phase: phase}
	switch phase {
	case protocol.PhaseResponseFilter, protocol.PhaseResponseBodyFilter, protocol.PhaseLogging:
		c.inv.Response = &protocol.HTTPResponse{}
	}
	return c
}

// wsCall starts a WebSocket event call on connection id. An event number
// outside 350-353 leaves the kind empty (wasmhost refuses such calls).
func wsCall(event uint32, id string) *call {
	c := newCall(protocol.PhaseEvent)
	c.event = event
	c.inv.WS = &protocol.WSEvent{Kind: wsKind(event), ConnectionID: id}
	return c
}

func wsKind(event uint32) protocol.WSEventKind {
	for _, k := range []protocol.WSEventKind{protocol.WSOpen, protocol.WSText, protocol.WSBinary, protocol.WSClose} {
		if k.EventNumber() == event {
			return k
		}
	}
	return ""
}

func (c *call) fail(format string, args ...any) *call {
	c.bad = append(c.bad, fmt.Sprintf(format, args...))
	return c
}

func (c *call) response() *protocol.HTTPResponse {
	if c.inv.Response == nil {
		c.inv.Response = &protocol.HTTPResponse{}
	}
	return c.inv.Response
}

func (c *call) ws() *protocol.WSEvent {
	if c.inv.WS == nil {
		c.inv.WS = &protocol.WSEvent{}
	}
	return c.inv.WS
}

// set puts the value the guest should read with method into the
// invocation. Reads wasmhost derives from other fields (body lengths, the
// URL) are checked against them instead.
func (c *call) set(method uint32, value string) *call {
	req := &c.inv.Request
	switch method {
	case protocol.ReadRequestMethod:
		req.Method = value
	case protocol.ReadRequestScheme:
		req.Scheme = value
	case protocol.ReadRequestHost:
		req.Host = value
	case protocol.ReadRequestPath:
		req.Path = value
	case protocol.ReadRequestQuery:
		req.Query = value
	case protocol.ReadRequestURL:
		req.Path, req.Query, _ = strings.Cut(value, "?")
	case protocol.ReadRequestClientIP:
		req.ClientIP = value
	case protocol.ReadRequestFullBody:
		req.Body = []byte(value)
	case protocol.ReadRequestBytes:
		if value != strconv.Itoa(len(req.Body)) {
			return c.fail("request bytes %q: wasmhost answers the body's length, %d", value, len(req.Body))
		}
	case protocol.ReadRequestTimestamp:
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return c.fail("request timestamp %q: %v", value, err)
		}
		req.Timestamp = n
	case protocol.ReadRequestID:
		id, err := protocol.ParseRequestID(value)
		if err != nil {
			return c.fail("request id %q: %v", value, err)
		}
		c.reqID = id
	case protocol.MethodGetPayload:
		// GET_PAYLOAD is the WebSocket payload, the body chunk, or the
		// request body, depending on the phase.
		switch c.phase {
		case protocol.PhaseEvent:
			c.ws().Payload = []byte(value)
		case protocol.PhaseResponseBodyFilter:
			c.response().Body = []byte(value)
		default:
			req.Body = []byte(value)
		}
	case protocol.ReadResponseStatus:
		n, err := strconv.Atoi(value)
		if err != nil {
			return c.fail("response status %q: %v", value, err)
		}
		c.response().Status = n
	case protocol.ReadResponseFullBody:
		if c.phase == protocol.PhaseResponseBodyFilter {
			// The body filter's only body is its chunk, read by either method.
			return c.fail("response full body in %s: wasmhost answers the chunk (set GET_PAYLOAD)", c.phase)
		}
		c.response().Body = []byte(value)
	case protocol.ReadResponseBytes:
		if value != strconv.Itoa(len(c.response().Body)) {
			return c.fail("response bytes %q: wasmhost answers the body's length, %d", value, len(c.response().Body))
		}
	case protocol.ReadResponseDuration:
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return c.fail("response duration %q: %v", value, err)
		}
		c.response().DurationMs = n
	case protocol.ReadResponseError:
		c.response().Error = value
	case protocol.ReadBodyChunkInfo:
		idx, last, ok := strings.Cut(value, ",")
		n, err := strconv.ParseUint(idx, 10, 32)
		if !ok || err != nil || (last != "0" && last != "1") {
			return c.fail("body chunk info %q: want index,0|1", value)
		}
		r := c.response()
		r.ChunkIndex, r.LastChunk = uint32(n), last == "1"
	case protocol.ReadWSConnectionID:
		c.ws().ConnectionID = value
	case protocol.ReadWSCloseCode:
		n, err := strconv.ParseUint(value, 10, 16)
		if err != nil {
			return c.fail("ws close code %q: %v", value, err)
		}
		c.ws().CloseCode = uint16(n)
	case protocol.ReadWSCloseReason:
		c.ws().CloseReason = value
	default:
		return c.fail("read method %d: not settable, set its source instead", method)
	}
	return c
}

// request sets the request line: method, path and raw query. wasmhost
// answers the URL and each query parameter from them.
func (c *call) request(method, url string) *call {
	return c.set(protocol.ReadRequestMethod, method).set(protocol.ReadRequestURL, url)
}

func headerList(pairs []string) []protocol.Header {
	hs := make([]protocol.Header, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		hs = append(hs, protocol.Header{Name: pairs[i], Value: pairs[i+1]})
	}
	return hs
}

func kvList(pairs []string) []protocol.KV {
	kvs := make([]protocol.KV, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		kvs = append(kvs, protocol.KV{Key: pairs[i], Value: pairs[i+1]})
	}
	return kvs
}

// reqHeaders appends request header lines (name, value, ...) in order.
func (c *call) reqHeaders(pairs ...string) *call {
	c.inv.Request.Headers = append(c.inv.Request.Headers, headerList(pairs)...)
	return c
}

// respHeaders appends upstream response header lines (name, value, ...).
func (c *call) respHeaders(pairs ...string) *call {
	r := c.response()
	r.Headers = append(r.Headers, headerList(pairs)...)
	return c
}

// config adds config pairs (key, value, ...), kept in key order as the node
// sends them.
func (c *call) config(pairs ...string) *call {
	c.inv.Config = append(c.inv.Config, kvList(pairs)...)
	slices.SortStableFunc(c.inv.Config, func(a, b protocol.KV) int { return strings.Compare(a.Key, b.Key) })
	return c
}

// params adds route params (name, value, ...).
func (c *call) params(pairs ...string) *call {
	c.inv.Request.Params = append(c.inv.Request.Params, kvList(pairs)...)
	return c
}

// guest is one example function compiled by a wasmhost.Host with a single
// worker, so every call of a test runs on the same instance, as a warm node
// would (unless a failed call makes the host replace it).
type guest struct {
	t      testing.TB
	name   string
	mod    *wasmhost.Module
	phases uint32
	out    *testutil.SyncBuffer

	// logs are the guest's log records so far, in order: run moves them
	// out of the host's log after each call.
	logs []logRecord
	// output is every other line the host logged (guest stdout/stderr,
	// warnings), shown when a call fails.
	output []string
}

// load builds the guest package dir and compiles it in a new wasmhost.Host
// whose logger writes into a buffer, at every level a guest may use.
func load(t testing.TB, dir string) *guest {
	t.Helper()
	ctx := context.Background()
	out := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{
		Level: slog.Level(math.MinInt32),
		// Guest levels are arbitrary i32s: keep them as numbers, not
		// "INFO+2" strings.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				if l, ok := a.Value.Any().(slog.Level); ok {
					return slog.Int(slog.LevelKey, int(l))
				}
			}
			return a
		},
	}))
	// The on-disk cache is shared with other packages and runs: each module
	// is compiled to machine code once.
	host, err := wasmhost.New(ctx, wasmhost.Config{}.
		WithCompilationCacheDir(testutil.CompileCacheDir(t)).
		WithLogger(logger))
	if err != nil {
		t.Fatalf("wasmhost: %v", err)
	}
	t.Cleanup(func() {
		if err := host.Close(ctx); err != nil {
			t.Errorf("close wasmhost: %v", err)
		}
	})
	name := testutil.WasmName(dir)
	mod, err := host.Compile(ctx, name, testutil.Wasm(t, dir), wasmhost.Limits{MaxWorkers: 1})
	if err != nil {
		t.Fatalf("compile %s: %v (log: %s)", dir, err, out.Take())
	}
	g := &guest{t: t, name: name, mod: mod, phases: uint32(mod.Phases()), out: out}
	g.collect()
	return g
}

// call makes one call of c in wasmhost and records the guest's writes and
// logs in c and g.
func (g *guest) call(c *call) (protocol.Action, error) {
	g.t.Helper()
	if len(c.bad) > 0 {
		g.t.Fatalf("call of %s cannot be built: %s", c.phase, strings.Join(c.bad, "; "))
	}
	res, err := g.mod.Call(context.Background(), c.phase, c.event, &c.inv, c.reqID)
	g.collect()
	c.ops = c.ops[:0]
	for _, o := range res.Ops {
		c.ops = append(c.ops, opOf(o))
	}
	c.errText = res.Error
	return res.Action, err
}

// run makes one call that must not fail in the host, and returns the action
// the guest chose.
func (g *guest) run(c *call) protocol.Action {
	g.t.Helper()
	a, err := g.call(c)
	if err != nil {
		g.t.Fatalf("%s phase[%s] event[%d]: %v (output: %s)", g.name, c.phase, c.event, err, strings.Join(g.output, "\n"))
	}
	return a
}

// collect moves the host's log lines into g: records of the log import
// (those that are not "guest output" lines but carry the call's phase) to
// logs, the rest to output.
func (g *guest) collect() {
	g.t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(g.out.Take()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Level    int32  `json:"level"`
			Msg      string `json:"msg"`
			Function string `json:"function"`
			Phase    string `json:"phase"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			g.t.Fatalf("host log line %q: %v", sc.Text(), err)
		}
		if rec.Function == g.name && rec.Phase != "" && rec.Msg != "guest output" {
			g.logs = append(g.logs, logRecord{Level: rec.Level, Text: rec.Msg})
			continue
		}
		g.output = append(g.output, sc.Text())
	}
}

// Assertions.

func wantAction(t testing.TB, got, want protocol.Action) {
	t.Helper()
	if got != want {
		t.Fatalf("action = %v, want %v", got, want)
	}
}

func wantOps(t testing.TB, c *call, want ...op) {
	t.Helper()
	if len(c.ops) != len(want) {
		t.Fatalf("ops = %v, want %v", c.ops, want)
	}
	for i := range want {
		if c.ops[i] != want[i] {
			t.Fatalf("op %d = %v, want %v (all: %v)", i, c.ops[i], want[i], c.ops)
		}
	}
}

// findOp returns the first op with method and A (case-insensitive for A),
// or fails the test.
func findOp(t testing.TB, c *call, method uint32, a string) op {
	t.Helper()
	for _, o := range c.ops {
		if o.Method == method && strings.EqualFold(o.A, a) {
			return o
		}
	}
	t.Fatalf("no op %d(%q) in %v", method, a, c.ops)
	return op{}
}

func hasOp(c *call, method uint32, a string) bool {
	for _, o := range c.ops {
		if o.Method == method && strings.EqualFold(o.A, a) {
			return true
		}
	}
	return false
}
