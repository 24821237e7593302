package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Guest modules the tests deploy.
const (
	helloDir   = "functions/examples/hello"
	headersDir = "functions/examples/headers"
	counterDir = "platform/testdata/guests/counter"
)

// testLogger discards records unless NYLON_TEST_LOG is set, which sends
// them to stderr (debugging aid only; no test depends on it).
func testLogger() *slog.Logger {
	if os.Getenv("NYLON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is one embedded NATS server with a registry and a wasm host, the
// world a test's nodes and admin API live in.
type env struct {
	t    testing.TB
	srv  *server.Server
	nc   *nats.Conn
	reg  *registry.Registry
	host *wasmhost.Host
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOn(t, testutil.RunNATS(t))
}

// newEnvOn is newEnv on a server of the test's own (testutil.RunNATSWith).
func newEnvOn(t testing.TB, s *server.Server) *env {
	t.Helper()
	nc := testutil.Connect(t, s)
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := registry.New(ctx, js, registry.WithLogger(testLogger()))
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	return &env{t: t, srv: s, nc: nc, reg: reg, host: newHost(t)}
}

// sharedHost is the wasm host of every test in this binary: wazero keeps
// compiled code per runtime, so a module compiled for one test is reused
// by the next (and the on-disk cache of testutil.CompileCacheDir carries it
// across runs). Created by TestMain.
var sharedHost *wasmhost.Host

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := compileCacheDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// A generous start-up bound: under -race with every package's tests
	// sharing two cores, a Go guest's _initialize has taken over 10 s.
	cfg := wasmhost.Config{}.WithCompilationCacheDir(dir).WithLogger(testLogger()).WithInitTimeout(time.Minute)
	if sharedHost, err = wasmhost.New(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "wasm host:", err)
		return 1
	}
	defer sharedHost.Close(context.Background())
	return m.Run()
}

// compileCacheDir is testutil.CompileCacheDir without a testing.TB.
func compileCacheDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(wd), "build", "wazero-cache")
	return dir, os.MkdirAll(dir, 0o755)
}

// newHost returns the shared wasm host.
func newHost(testing.TB) *wasmhost.Host { return sharedHost }

// wasmCache keeps each guest's bytes once per test binary.
var wasmCache sync.Map

func guest(t testing.TB, dir string) []byte {
	t.Helper()
	if b, ok := wasmCache.Load(dir); ok {
		return b.([]byte)
	}
	b := testutil.Wasm(t, dir)
	wasmCache.Store(dir, b)
	return b
}

// deploy stores the guest of dir as a new version of spec.Name.
func (e *env) deploy(spec registry.Spec, dir string) registry.Record {
	e.t.Helper()
	wasm := guest(e.t, dir)
	// Validate compiles (a cache miss under -race takes tens of seconds)
	// and starts an instance: as generous as the host's init timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	info, err := e.host.Validate(ctx, wasm)
	if err != nil {
		e.t.Fatalf("validate %s: %v", dir, err)
	}
	spec.Phases = info.Phases
	rec, err := e.reg.Deploy(ctx, spec, wasm)
	if err != nil {
		e.t.Fatalf("deploy %s: %v", spec.Name, err)
	}
	return rec
}

// nodeOpt adjusts a node's Config.
type nodeOpt func(*platform.Config)

// startNode starts a node on its own connection, drained when the test ends.
func (e *env) startNode(id string, opts ...nodeOpt) *platform.Node {
	e.t.Helper()
	cfg := platform.Config{
		NATS:     testutil.Connect(e.t, e.srv),
		Registry: e.reg,
		Host:     newHost(e.t),
		NodeID:   id,
		Logger:   testLogger(),
		Metrics:  prometheus.NewRegistry(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	n, err := platform.NewNode(cfg)
	if err != nil {
		e.t.Fatalf("new node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		e.t.Fatalf("start node %s: %v", id, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Drain(ctx)
	})
	return n
}

// request builds a request_filter envelope for path?query with a fresh id.
func request(phase protocol.Phase, query string) protocol.PluginRequest {
	inv := protocol.Invocation{Request: protocol.HTTPRequest{
		Method: "GET", Scheme: "http", Host: "example.test", Path: "/", Query: query,
		Headers: []protocol.Header{{Name: "Accept", Value: "*/*"}},
	}}
	return protocol.PluginRequest{
		Version:   protocol.Version,
		RequestID: protocol.NewRequestID(),
		Phase:     phase,
		Data:      protocol.AppendInvocation(nil, &inv),
		Timestamp: uint64(time.Now().UnixMilli()),
	}
}

// serviceError is a micro error reply.
type serviceError struct {
	Code int
	Desc string
}

func (e *serviceError) Error() string { return fmt.Sprintf("micro error %d: %s", e.Code, e.Desc) }

// call sends req to function's phase subject and decodes the reply; a micro
// error reply is returned as *serviceError.
func call(nc *nats.Conn, function string, req protocol.PluginRequest, timeout time.Duration) (*protocol.PluginResponse, *nats.Msg, error) {
	return callWith(nc, function, req, nil, timeout)
}

// callWith is call with more NATS headers.
func callWith(nc *nats.Conn, function string, req protocol.PluginRequest, extra nats.Header, timeout time.Duration) (*protocol.PluginResponse, *nats.Msg, error) {
	msg := &nats.Msg{
		Subject: protocol.PhaseSubject(protocol.Prefix("dev"), function, req.Phase),
		Data:    req.AppendMsgpack(nil),
		Header:  nats.Header{protocol.HeaderTraceparent: []string{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
	}
	for k, v := range extra {
		msg.Header[k] = v
	}
	reply, err := nc.RequestMsg(msg, timeout)
	if err != nil {
		return nil, nil, err
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		n, _ := strconv.Atoi(code)
		return nil, reply, &serviceError{Code: n, Desc: reply.Header.Get(micro.ErrorHeader)}
	}
	var resp protocol.PluginResponse
	if err := protocol.DecodeResponse(reply.Data, &resp); err != nil {
		return nil, reply, fmt.Errorf("decode reply: %w", err)
	}
	return &resp, reply, nil
}

// header returns the value the ops of resp set for response header name.
func header(t testing.TB, resp *protocol.PluginResponse, name string) string {
	t.Helper()
	ops, err := protocol.DecodeOps(resp.Data, nil)
	if err != nil {
		t.Fatalf("decode ops: %v", err)
	}
	for _, op := range ops {
		if op.Code == protocol.OpSetResponseHeader && op.Key == name {
			return string(op.Value)
		}
	}
	return ""
}

// body returns the body resp's ops set.
func body(t testing.TB, resp *protocol.PluginResponse) string {
	t.Helper()
	ops, err := protocol.DecodeOps(resp.Data, nil)
	if err != nil {
		t.Fatalf("decode ops: %v", err)
	}
	for _, op := range ops {
		if op.Code == protocol.OpSetResponseBody {
			return string(op.Value)
		}
	}
	return ""
}

// serviceInfos asks $SRV.INFO.name and collects every instance's answer.
func serviceInfos(t testing.TB, nc *nats.Conn, name string, want int) []micro.Info {
	t.Helper()
	return collect[micro.Info](t, nc, micro.InfoVerb, name, want)
}

// serviceStats asks $SRV.STATS.name and collects every instance's answer.
func serviceStats(t testing.TB, nc *nats.Conn, name string, want int) []micro.Stats {
	t.Helper()
	return collect[micro.Stats](t, nc, micro.StatsVerb, name, want)
}

func collect[T any](t testing.TB, nc *nats.Conn, verb micro.Verb, name string, want int) []T {
	t.Helper()
	subject, err := micro.ControlSubject(verb, name, "")
	if err != nil {
		t.Fatal(err)
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []T
	for len(out) < want {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: %d answers, want %d: %v", subject, len(out), want, err)
		}
		var v T
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		out = append(out, v)
	}
	return out
}

func isTimeout(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// withMetrics makes the node register on reg.
func withMetrics(reg *prometheus.Registry) nodeOpt {
	return func(c *platform.Config) { c.Metrics = reg }
}

// withConfig applies fn to the node's Config.
func withConfig(fn func(*platform.Config)) nodeOpt { return nodeOpt(fn) }

// parallel runs fn(i) for i in [0, n) on `workers` goroutines.
func parallel(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}
