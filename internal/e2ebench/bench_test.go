package e2ebench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/loadgen"
	"github.com/nylon-functions/nylon/internal/natsconn"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

const (
	helloDir = "functions/examples/hello"
	// query is what every benchmark request asks; wantBody is the hello
	// function's answer to it, which the plain handler writes too.
	query    = "name=x"
	wantBody = `{"message":"hello, x"}`
)

// concurrencies are the numbers of persistent connections of the HTTP
// benchmarks, each with one request in flight: 1 for latency, 32 for
// throughput.
var concurrencies = []int{1, 32}

// target is the request line's target of every benchmark request.
const target = "/hello?" + query

// BenchmarkGatewayHello measures HTTP GET /hello?name=x through the whole
// stack: load generator -> httptest server -> gateway -> NATS request ->
// embedded nats-server -> platform node -> hello wasm guest, and back. Every
// response is checked (status 200, the function's JSON), so a broken hop
// fails the benchmark instead of measuring fast errors.
//
// Two wirings of the same parts: nats=inprocess is `nylon serve` on one
// machine (the embedded server, and one in-process connection shared by the
// registry, node and gateway, as serve connects them); nats=tcp gives each
// component its own loopback TCP connection, as separate processes against
// a NATS deployment would have.
func BenchmarkGatewayHello(b *testing.B) {
	for _, w := range []wiring{wiringInProcess, wiringTCP} {
		b.Run("nats="+string(w), func(b *testing.B) {
			addr := startStack(b, w)
			for _, conc := range concurrencies {
				b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) { benchLoad(b, addr, conc) })
			}
			b.Run("conc=32-loadgen-process", func(b *testing.B) { benchLoadProcess(b, addr, 32) })
		})
	}
	// serve --access-log: one JSON line per request, written to a file as
	// a redirected stderr would be (a write per line, like slog's handler
	// on os.Stderr).
	b.Run("nats=inprocess-accesslog", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = f.Close() })
		addr := startStack(b, wiringInProcess, gateway.WithAccessLog(slog.New(slog.NewJSONHandler(f, nil))))
		b.Run("conc=32", func(b *testing.B) { benchLoad(b, addr, 32) })
	})
}

// wiring is how the benchmark's components reach the NATS server.
type wiring string

const (
	wiringInProcess wiring = "inprocess"
	wiringTCP       wiring = "tcp"
)

// BenchmarkPlainHTTPHello is the baseline of BenchmarkGatewayHello: the
// same load generator and server writing the same JSON from a net/http
// handler, measured in the same run under the same machine load.
func BenchmarkPlainHTTPHello(b *testing.B) {
	body := []byte(wantBody)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name != "x" {
			http.Error(w, "want name=x", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	for _, conc := range concurrencies {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) { benchLoad(b, addr, conc) })
	}
	b.Run("conc=32-loadgen-process", func(b *testing.B) { benchLoadProcess(b, addr, 32) })
}

// startStack starts NATS, a registry, a node serving the hello function and
// a gateway (with gwOpts) routing /hello to it, and returns the gateway's address
// (host:port). It returns once a request answers with the function's body,
// so no benchmark iteration pays for loading the module.
func startStack(b *testing.B, w wiring, gwOpts ...gateway.Option) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)

	// The server and in-process connection `nylon serve` starts.
	embedded, err := natsconn.Connect(ctx, natsconn.Config{
		Env:      "dev",
		Embedded: natsconn.Embedded{Listen: "127.0.0.1:-1", DataDir: b.TempDir()},
	}, logger)
	if err != nil {
		b.Fatalf("embedded nats: %v", err)
	}
	b.Cleanup(func() { _ = embedded.Close(context.Background()) })
	connect := func() *nats.Conn { return embedded.NC }
	if w == wiringTCP {
		connect = func() *nats.Conn { return testutil.Connect(b, embedded.Server) }
	}
	reg, err := registry.New(ctx, testutil.JetStream(b, connect()), registry.WithLogger(logger))
	if err != nil {
		b.Fatalf("registry: %v", err)
	}

	// One host validates the module and runs it in the node; the on-disk
	// compilation cache keeps repeated runs from recompiling the guest.
	host, err := wasmhost.New(ctx, wasmhost.Config{}.WithCompilationCacheDir(testutil.CompileCacheDir(b)).WithLogger(logger))
	if err != nil {
		b.Fatalf("wasm host: %v", err)
	}
	b.Cleanup(func() { _ = host.Close(context.Background()) })

	wasm := testutil.Wasm(b, helloDir)
	info, err := host.Validate(ctx, wasm)
	if err != nil {
		b.Fatalf("validate %s: %v", helloDir, err)
	}
	if _, err := reg.Deploy(ctx, registry.Spec{Name: "hello", Phases: info.Phases}, wasm); err != nil {
		b.Fatalf("deploy hello: %v", err)
	}

	node, err := platform.NewNode(platform.Config{
		NATS:                connect(),
		Registry:            reg,
		Host:                host,
		CompilationCacheDir: testutil.CompileCacheDir(b),
		Env:                 "dev",
		NodeID:              "bench",
		Logger:              logger,
		Metrics:             prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatalf("new node: %v", err)
	}
	if err := node.Start(ctx); err != nil {
		b.Fatalf("start node: %v", err)
	}
	// Registered after the host's Close, so it runs first.
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = node.Drain(ctx)
	})

	gw, err := gateway.New(gateway.Config{}, connect(), append([]gateway.Option{gateway.WithEnv("dev"),
		gateway.WithRegisterer(prometheus.NewRegistry()), gateway.WithLogger(logger)}, gwOpts...)...)
	if err != nil {
		b.Fatalf("new gateway: %v", err)
	}
	b.Cleanup(func() { _ = gw.Close(context.Background()) })
	if err := gw.Start(ctx); err != nil {
		b.Fatalf("start gateway: %v", err)
	}
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{
		Path: "/hello", Function: "hello", Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter),
	}}); err != nil {
		b.Fatalf("function routes: %v", err)
	}
	srv := httptest.NewServer(gw)
	b.Cleanup(srv.Close)

	addr := srv.Listener.Addr().String()
	testutil.Eventually(b, 60*time.Second, 50*time.Millisecond, func() error {
		c, err := loadgen.Dial(ctx, helloSpec(addr))
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Do()
	})
	return addr
}

// helloSpec is every benchmark request: GET /hello?name=x to addr, whose
// response must be 200 with exactly wantBody.
func helloSpec(addr string) loadgen.Spec {
	return loadgen.Spec{Addr: addr, Target: target, ExpectBody: []byte(wantBody), CheckBody: true}
}

// benchLoad sends b.N requests over conc persistent connections to addr,
// each connection with one request in flight (a closed loop, like wrk or
// hey), checks every response, and reports req/s, latency percentiles and
// the process's CPU time per request. The connections are opened, and used
// once each, before the clock starts.
func benchLoad(b *testing.B, addr string, conc int) {
	ctx := context.Background()
	pool, err := loadgen.DialPool(ctx, helloSpec(addr), conc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pool.Close() })
	b.ReportAllocs()
	b.ResetTimer()
	// MaxErrors 0: the first failure stops the run, and fails the benchmark
	// below instead of measuring fast errors.
	res, err := pool.Run(ctx, loadgen.Options{Requests: b.N})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Errors > 0 {
		b.Fatalf("%d request(s) failed, first error: %v", res.Errors, res.FirstError)
	}
	reportLoad(b, res.Summary())
	// CPU time of the whole process (load generator, server, gateway, NATS
	// server and node share it) per request: unlike req/s it hardly
	// depends on what else the shared machine runs, and cores /
	// cpu-µs/req bounds the throughput of an otherwise idle machine.
	b.ReportMetric(float64(res.CPU.Microseconds())/float64(b.N), "cpu-µs/req")
}

// reportLoad reports the throughput and latency percentiles of a run.
func reportLoad(b *testing.B, s loadgen.Summary) {
	b.ReportMetric(s.RPS, "req/s")
	b.ReportMetric(s.LatencyMS.P50, "p50-ms")
	b.ReportMetric(s.LatencyMS.P90, "p90-ms")
	b.ReportMetric(s.LatencyMS.P99, "p99-ms")
}
