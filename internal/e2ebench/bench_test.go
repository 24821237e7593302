package e2ebench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
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
// a gateway routing /hello to it, and returns the gateway's address
// (host:port). It returns once a request answers with the function's body,
// so no benchmark iteration pays for loading the module.
func startStack(b *testing.B, w wiring) string {
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

	gw, err := gateway.New(gateway.Config{}, connect(), gateway.WithEnv("dev"),
		gateway.WithRegisterer(prometheus.NewRegistry()), gateway.WithLogger(logger))
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
		c, err := dialLoad(addr, target, []byte(wantBody))
		if err != nil {
			return err
		}
		defer c.Close()
		return c.do()
	})
	return addr
}

// benchLoad sends b.N requests over conc persistent connections to addr,
// each connection with one request in flight (a closed loop, like wrk or
// hey), checks every response, and reports req/s, latency percentiles and
// the process's CPU time per request.
func benchLoad(b *testing.B, addr string, conc int) {
	conns, err := dialLoadConns(addr, conc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { closeLoadConns(conns) })
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	lats, elapsed, err := runLoad(conns, b.N)
	cpu := processCPU() - cpu0
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	report(b, lats, elapsed)
	// CPU time of the whole process (load generator, server, gateway, NATS
	// server and node share it) per request: unlike req/s it hardly
	// depends on what else the shared machine runs, and cores /
	// cpu-µs/req bounds the throughput of an otherwise idle machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
}

// dialLoadConns opens conc connections to addr and makes one exchange on
// each, so the server has accepted them and set up their goroutines and
// buffers before any clock starts.
func dialLoadConns(addr string, conc int) ([]*loadConn, error) {
	conns := make([]*loadConn, 0, conc)
	for range conc {
		c, err := dialLoad(addr, target, []byte(wantBody))
		if err != nil {
			closeLoadConns(conns)
			return nil, err
		}
		conns = append(conns, c)
		if err := c.do(); err != nil {
			closeLoadConns(conns)
			return nil, fmt.Errorf("warm-up request: %w", err)
		}
	}
	return conns, nil
}

func closeLoadConns(conns []*loadConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// runLoad makes n requests over conns, each connection with one request in
// flight, and returns every request's latency and the wall time taken.
func runLoad(conns []*loadConn, n int) ([]time.Duration, time.Duration, error) {
	lats := make([]time.Duration, n)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				err := c.do()
				lats[i] = time.Since(t0)
				if err != nil {
					// The connection's state is unknown after an
					// error: count the rest of its share as failed.
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if k := failed.Load(); k > 0 {
		return nil, 0, fmt.Errorf("%d connection(s) failed, first error: %v", k, firstErr.Load())
	}
	return lats, elapsed, nil
}

func report(b *testing.B, lats []time.Duration, elapsed time.Duration) {
	reportLoad(b, len(lats), elapsed, percentiles(lats))
}

// percentiles returns the p50, p90 and p99 of lats, which it sorts.
func percentiles(lats []time.Duration) [3]time.Duration {
	slices.Sort(lats)
	pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(float64(len(lats))*p))] }
	return [3]time.Duration{pct(0.50), pct(0.90), pct(0.99)}
}

// reportLoad reports the throughput of n requests in elapsed and their
// latency percentiles.
func reportLoad(b *testing.B, n int, elapsed time.Duration, pcts [3]time.Duration) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(float64(n)/elapsed.Seconds(), "req/s")
	b.ReportMetric(ms(pcts[0]), "p50-ms")
	b.ReportMetric(ms(pcts[1]), "p90-ms")
	b.ReportMetric(ms(pcts[2]), "p99-ms")
}

// processCPU returns the user plus system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
