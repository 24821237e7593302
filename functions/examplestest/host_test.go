package examplestest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// call is one invocation as the test host sees it: what the guest may read,
// and what it wrote.
type call struct {
	phase protocol.Phase
	event uint32

	// reads answers unkeyed read methods; keyed answers methods that take a
	// key (header names are stored lower case and looked up in any case).
	reads map[uint32]string
	keyed map[uint32]map[string]string

	ops      []op
	errText  string
	hasError bool
}

// op is one write the guest made.
type op struct {
	Method uint32 // low 16 bits of write's method
	Flags  uint32 // high 16 bits
	A, B   string
}

func (o op) String() string { return fmt.Sprintf("%d/%d(%q, %q)", o.Method, o.Flags, o.A, o.B) }

// logRecord is one call of the log import.
type logRecord struct {
	Level int32
	Text  string
}

// newCall starts a call of phase with no values.
func newCall(phase protocol.Phase) *call {
	return &call{phase: phase, reads: map[uint32]string{}, keyed: map[uint32]map[string]string{}}
}

// wsCall starts a WebSocket event call on connection id.
func wsCall(event uint32, id string) *call {
	c := newCall(protocol.PhaseEvent)
	c.event = event
	c.set(protocol.ReadWSConnectionID, id)
	return c
}

func (c *call) set(method uint32, value string) *call {
	c.reads[method] = value
	return c
}

func (c *call) setKeyed(method uint32, key, value string) *call {
	if c.keyed[method] == nil {
		c.keyed[method] = map[string]string{}
	}
	c.keyed[method][key] = value
	return c
}

// list encodes name/value pairs as the ABI's list value.
func list(pairs ...string) string {
	var b strings.Builder
	for _, p := range pairs {
		b.WriteString(p)
		b.WriteByte(protocol.ListSep)
	}
	return b.String()
}

// request sets the request line and query: the scalar reads, the raw query
// and each query parameter's first value.
func (c *call) request(method, url string) *call {
	path, query, _ := strings.Cut(url, "?")
	c.set(protocol.ReadRequestMethod, method).
		set(protocol.ReadRequestURL, url).
		set(protocol.ReadRequestPath, path).
		set(protocol.ReadRequestQuery, query)
	for pair := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if k == "" {
			continue
		}
		if _, ok := c.keyed[protocol.ReadRequestQueryParam][k]; !ok {
			c.setKeyed(protocol.ReadRequestQueryParam, k, v)
		}
	}
	return c
}

// headers sets a header list (202 or 110) and its keyed lookups (201 or 225).
func (c *call) headers(listMethod, keyMethod uint32, pairs ...string) *call {
	c.set(listMethod, list(pairs...))
	for i := len(pairs) - 2; i >= 0; i -= 2 { // first value wins
		c.setKeyed(keyMethod, strings.ToLower(pairs[i]), pairs[i+1])
	}
	return c
}

func (c *call) reqHeaders(pairs ...string) *call {
	return c.headers(protocol.ReadRequestHeaders, protocol.ReadRequestHeader, pairs...)
}

func (c *call) respHeaders(pairs ...string) *call {
	return c.headers(protocol.ReadResponseHeaders, protocol.ReadResponseHeader, pairs...)
}

// config sets config pairs, both the list (220, empty key) and each key.
func (c *call) config(pairs ...string) *call {
	c.setKeyed(protocol.ReadConfig, "", list(pairs...))
	for i := 0; i+1 < len(pairs); i += 2 {
		c.setKeyed(protocol.ReadConfig, pairs[i], pairs[i+1])
	}
	return c
}

// params sets route params, the list (206) and each key (222).
func (c *call) params(pairs ...string) *call {
	c.set(protocol.ReadRequestParams, list(pairs...))
	for i := 0; i+1 < len(pairs); i += 2 {
		c.setKeyed(protocol.ReadRequestParam, pairs[i], pairs[i+1])
	}
	return c
}

func (c *call) lookup(method uint32, key string) (string, bool) {
	if m, ok := c.keyed[method]; ok {
		if method == protocol.ReadRequestHeader || method == protocol.ReadResponseHeader {
			key = strings.ToLower(key)
		}
		v, ok := m[key]
		return v, ok
	}
	v, ok := c.reads[method]
	return v, ok
}

// allowed mirrors the node's phase rules for writes: the result code for
// method in this call's phase.
func (c *call) allowed(method uint32) int32 {
	switch {
	case method == protocol.MethodError:
		return 0
	case protocol.IsRequestHeaderOp(method):
		if c.phase != protocol.PhaseRequestFilter {
			return -1
		}
	case protocol.IsResponseOp(method):
		if c.phase == protocol.PhaseEvent || c.phase == protocol.PhaseLogging {
			return -1
		}
	case protocol.IsWSOp(method):
		if c.phase != protocol.PhaseEvent {
			return -1
		}
	default:
		return -3
	}
	return 0
}

// guest is one instance of a module under the test host.
type guest struct {
	t      testing.TB
	mod    api.Module
	handle api.Function
	phases uint32
	stdout bytes.Buffer

	// The host functions run synchronously inside handle.Call on the
	// test's goroutine, so these need no lock.
	cur  *call
	logs []logRecord
}

// load builds the guest package dir, instantiates it once (running
// _initialize) and checks the ABI marker exports.
func load(t testing.TB, dir string) *guest {
	t.Helper()
	ctx := context.Background()
	wasm := testutil.Wasm(t, dir)
	// The on-disk cache is shared with other packages and runs: each module
	// is compiled to machine code once.
	cache, err := wazero.NewCompilationCacheWithDir(testutil.CompileCacheDir(t))
	if err != nil {
		t.Fatalf("compilation cache: %v", err)
	}
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	t.Cleanup(func() {
		r.Close(ctx)
		cache.Close(ctx)
	})
	wasi_snapshot_preview1.MustInstantiate(ctx, r)

	g := &guest{t: t}
	i32 := api.ValueTypeI32
	_, err = r.NewHostModuleBuilder("nylon").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(g.read), []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}).Export("read").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(g.write), []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}).Export("write").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(g.log), []api.ValueType{i32, i32, i32}, nil).Export("log").
		Instantiate(ctx)
	if err != nil {
		t.Fatalf("host module: %v", err)
	}
	compiled, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatalf("compile %s: %v", dir, err)
	}
	for _, imp := range compiled.ImportedFunctions() {
		if mod, name, _ := imp.Import(); mod != "nylon" && mod != "wasi_snapshot_preview1" {
			t.Fatalf("%s imports %s.%s: want only nylon and wasi_snapshot_preview1", dir, mod, name)
		}
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		t.Fatalf("%s does not export memory", dir)
	}
	cfg := wazero.NewModuleConfig().
		WithStartFunctions("_initialize").
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader).
		WithStdout(&g.stdout).WithStderr(&g.stdout)
	g.mod, err = r.InstantiateModule(ctx, compiled, cfg)
	if err != nil {
		t.Fatalf("instantiate %s: %v (output: %s)", dir, err, g.stdout.String())
	}
	if g.mod.ExportedFunction("nylon_abi_v1") == nil {
		t.Fatalf("%s does not export nylon_abi_v1", dir)
	}
	if _, err := g.mod.ExportedFunction("nylon_abi_v1").Call(ctx); err != nil {
		t.Fatalf("nylon_abi_v1: %v", err)
	}
	res, err := g.mod.ExportedFunction("nylon_phases").Call(ctx)
	if err != nil {
		t.Fatalf("nylon_phases: %v", err)
	}
	g.phases = uint32(res[0])
	if g.handle = g.mod.ExportedFunction("nylon_handle"); g.handle == nil {
		t.Fatalf("%s does not export nylon_handle", dir)
	}
	return g
}

// run makes one call and returns the action the guest chose.
func (g *guest) run(c *call) protocol.Action {
	g.t.Helper()
	g.cur = c
	defer func() { g.cur = nil }()
	res, err := g.handle.Call(context.Background(), uint64(c.phase), uint64(c.event))
	if err != nil {
		g.t.Fatalf("nylon_handle(%d, %d): %v (output: %s)", c.phase, c.event, err, g.stdout.String())
	}
	return protocol.Action(int32(res[0]))
}

// bytesAt reads guest memory; an out-of-bounds range fails the test the way
// a real host traps the call.
func (g *guest) bytesAt(mod api.Module, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Sprintf("guest memory [%d, +%d) out of range", ptr, n))
	}
	return b
}

// read implements nylon.read(method, key_ptr, key_len, buf_ptr, buf_cap) -> i32.
func (g *guest) read(_ context.Context, mod api.Module, stack []uint64) {
	method, kp, kl, bp, bc := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])
	key := string(g.bytesAt(mod, kp, kl))
	if g.cur == nil {
		panic("read outside a call")
	}
	if method == protocol.MethodGetPayload {
		// GET_PAYLOAD is the ws payload, the body chunk, or the request body.
		v, ok := g.cur.reads[method]
		if !ok && g.cur.phase != protocol.PhaseEvent && g.cur.phase != protocol.PhaseResponseBodyFilter {
			v, ok = g.cur.reads[protocol.ReadRequestFullBody]
		}
		stack[0] = api.EncodeI32(g.copyOut(mod, v, ok, bp, bc))
		return
	}
	v, ok := g.cur.lookup(method, key)
	stack[0] = api.EncodeI32(g.copyOut(mod, v, ok, bp, bc))
}

func (g *guest) copyOut(mod api.Module, v string, ok bool, bp, bc uint32) int32 {
	if !ok {
		return -1
	}
	if uint32(len(v)) > bc {
		return int32(len(v))
	}
	if len(v) > 0 && !mod.Memory().WriteString(bp, v) {
		panic(fmt.Sprintf("guest buffer [%d, +%d) out of range", bp, len(v)))
	}
	return int32(len(v))
}

// write implements nylon.write(method, a_ptr, a_len, b_ptr, b_len) -> i32.
func (g *guest) write(_ context.Context, mod api.Module, stack []uint64) {
	m := uint32(stack[0])
	a := string(g.bytesAt(mod, uint32(stack[1]), uint32(stack[2])))
	b := string(g.bytesAt(mod, uint32(stack[3]), uint32(stack[4])))
	if g.cur == nil {
		panic("write outside a call")
	}
	method, flags := m&0xffff, m>>16
	rc := g.cur.allowed(method)
	switch {
	case rc != 0:
	case method == protocol.OpSetResponseStatus:
		if n, err := strconv.Atoi(a); err != nil || n < 100 || n > 999 {
			rc = -3
		}
	case method == protocol.OpWSClose:
		if _, err := strconv.Atoi(a); err != nil {
			rc = -3
		}
	}
	if rc != 0 {
		stack[0] = api.EncodeI32(rc)
		return
	}
	if method == protocol.MethodError {
		g.cur.errText, g.cur.hasError = a, true
	} else {
		g.cur.ops = append(g.cur.ops, op{Method: method, Flags: flags, A: a, B: b})
	}
	stack[0] = 0
}

// log implements nylon.log(level, ptr, len).
func (g *guest) log(_ context.Context, mod api.Module, stack []uint64) {
	text := string(g.bytesAt(mod, uint32(stack[1]), uint32(stack[2])))
	g.logs = append(g.logs, logRecord{Level: api.DecodeI32(stack[0]), Text: text})
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
