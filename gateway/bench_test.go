package gateway_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkHTTP measures requests/s and latency percentiles of HTTP
// requests answered by a plain net/http handler and, in the same run, by
// the gateway with a function origin (a NATS micro responder that decodes
// the request and answers like a node), and with an upstream behind an
// auth-like request_filter. Concurrency is 1 (latency) and 32 (throughput).
//
//	go test ./gateway -run XXX -bench . -benchmem
func BenchmarkHTTP(b *testing.B) {
	s := testutil.RunNATS(b)
	nc := testutil.Connect(b, s)
	hello := func(req micro.Request) {
		var pr protocol.PluginRequest
		var inv protocol.Invocation
		if protocol.DecodeRequest(req.Data(), &pr) != nil || protocol.DecodeInvocation(pr.Data, &inv) != nil {
			_ = req.Error("400", "decode", nil)
			return
		}
		action := protocol.ActionNext
		var ops []protocol.Op
		if pr.Phase == protocol.PhaseRequestFilter && inv.Request.Path == "/hello" {
			action = protocol.ActionEnd
			ops = []protocol.Op{{Code: protocol.OpSetResponseBody, Value: []byte("hello")}}
		}
		resp := protocol.PluginResponse{Version: protocol.Version, RequestID: pr.RequestID, SessionID: pr.SessionID,
			Action: action, Data: protocol.AppendOps(nil, ops)}
		_ = req.Respond(resp.AppendMsgpack(nil))
	}
	for _, fn := range []string{"hello", "auth"} {
		svc, err := micro.AddService(nc, micro.Config{Name: fn, Version: "1.0.0"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = svc.Stop() })
		if err := svc.AddEndpoint("request_filter", micro.HandlerFunc(hello),
			micro.WithEndpointSubject(protocol.PhaseSubject(prefix, fn, protocol.PhaseRequestFilter)),
			micro.WithEndpointQueueGroup(fn)); err != nil {
			b.Fatal(err)
		}
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	b.Cleanup(plain.Close)

	cfg, err := gateway.ParseConfig("bench.yaml", []byte(`
messaging:
  - {name: nats, subject_prefix: nylon.dev, request_timeout_ms: 2000, max_inflight: 4096}
plugins:
  - {name: auth, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /up, upstream: "`+plain.URL+`", plugins: [auth]}
`))
	if err != nil {
		b.Fatal(err)
	}
	gw, err := gateway.New(*cfg, nc, gateway.WithRegisterer(prometheus.NewRegistry()), gateway.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = gw.Close(b.Context()) })
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/hello", Function: "hello"}}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	b.Cleanup(srv.Close)

	for _, tc := range []struct{ name, url string }{
		{"plain-nethttp", plain.URL + "/hello"},
		{"gateway-function", srv.URL + "/hello"},
		{"gateway-upstream+request_filter", srv.URL + "/up"},
	} {
		for _, conc := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/conc=%d", tc.name, conc), func(b *testing.B) {
				benchGet(b, tc.url, conc)
			})
		}
	}
}

// benchGet issues b.N GETs from conc goroutines over kept-alive
// connections and reports requests/s and latency percentiles.
func benchGet(b *testing.B, url string, conc int) {
	tr := &http.Transport{MaxIdleConns: conc * 2, MaxIdleConnsPerHost: conc * 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var (
		mu   sync.Mutex
		lats = make([]time.Duration, 0, b.N)
		wg   sync.WaitGroup
		work = make(chan struct{}, conc)
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/conc+1)
			for range work {
				t0 := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lats) == 0 {
		return
	}
	slices.Sort(lats)
	pct := func(p float64) float64 {
		return float64(lats[min(len(lats)-1, int(p*float64(len(lats))))].Microseconds())
	}
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.90), "p90-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
