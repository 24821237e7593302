package platform_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nylon-functions/nylon/internal/loadgen"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// BenchmarkNode measures requests/s and latency percentiles of the hello
// function served by a node over NATS, at several numbers of requests in
// flight from one client connection, next to a native nats.go micro echo
// endpoint measured the same way in the same run (the floor: NATS
// round-trips with no work at all).
//
//	go test ./platform -run XXX -bench . -benchmem
func BenchmarkNode(b *testing.B) {
	e := newEnv(b)
	e.deploy(registry.Spec{Name: "hello"}, helloDir)
	e.startNode("bench")

	echoConn := testutil.Connect(b, e.srv)
	svc, err := micro.AddService(echoConn, micro.Config{
		Name:    "echo",
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: "bench.echo",
			Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Stop() })
	if err := echoConn.Flush(); err != nil {
		b.Fatal(err)
	}

	client := testutil.Connect(b, e.srv)
	payload := request(protocol.PhaseRequestFilter, "name=bench")
	helloSubject := protocol.PhaseSubject(protocol.Prefix("dev"), "hello", protocol.PhaseRequestFilter)

	for _, inflight := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("hello/inflight=%d", inflight), func(b *testing.B) {
			// Every request has its own id (as a caller's would, and so
			// the idempotency cache does its full work); they are encoded
			// before the clock starts, like the echo's payload.
			reqs := make([][]byte, b.N)
			for i := range reqs {
				req := payload
				req.RequestID = protocol.NewRequestID()
				reqs[i] = req.AppendMsgpack(nil)
			}
			runLoad(b, client, helloSubject, inflight, func(i int) []byte { return reqs[i] }, func(i int, m *nats.Msg) error {
				// Both harnesses check every reply for a micro error; this
				// one also decodes every 64th in full, so a broken node
				// fails the benchmark without the client's decoding
				// weighing on the comparison with the echo.
				if i%64 != 0 {
					return nil
				}
				var resp protocol.PluginResponse
				if err := protocol.DecodeResponse(m.Data, &resp); err != nil {
					return err
				}
				if resp.Action != protocol.ActionEnd {
					return fmt.Errorf("action %v: %s", resp.Action, resp.Error)
				}
				return nil
			})
		})
		b.Run(fmt.Sprintf("native-echo/inflight=%d", inflight), func(b *testing.B) {
			data := payload.AppendMsgpack(nil)
			runLoad(b, client, "bench.echo", inflight, func(int) []byte { return data }, func(int, *nats.Msg) error { return nil })
		})
	}
}

// runLoad sends b.N requests to subject from `inflight` goroutines, each
// waiting for its reply before sending the next, and reports throughput
// and latency percentiles.
func runLoad(b *testing.B, nc *nats.Conn, subject string, inflight int, next func(int) []byte, check func(int, *nats.Msg) error) {
	b.ReportAllocs()
	lat := make([]time.Duration, b.N)
	var idx atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := loadgen.ProcessCPU()
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(idx.Add(1)) - 1
				if i >= b.N {
					return
				}
				data := next(i)
				t0 := time.Now()
				m, err := nc.Request(subject, data, 10*time.Second)
				lat[i] = time.Since(t0)
				if err == nil {
					if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
						err = fmt.Errorf("micro error %s: %s", code, m.Header.Get(micro.ErrorHeader))
					} else {
						err = check(i, m)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := loadgen.ProcessCPU() - cpu0
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed, first: %v", n, b.N, firstErr.Load())
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.90), "p90-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	// CPU time of the whole process (client, NATS server and node share
	// it) per request: unlike req/s it does not depend on what else the
	// machine runs, and 2 cores / cpu-µs/req bounds the throughput of an
	// otherwise idle 2-core machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
}
