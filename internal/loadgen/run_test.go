package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// countingServer serves helloBody, failing with fail(n) when it returns a
// status other than 0 for the n-th request (1-based, over all connections);
// it counts requests and accepted connections.
type countingServer struct {
	addr            string
	requests, conns atomic.Int64
}

func newCountingServer(t *testing.T, fail func(n int64) int) *countingServer {
	t.Helper()
	cs := &countingServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cs.requests.Add(1)
		if fail != nil {
			if status := fail(n); status != 0 {
				http.Error(w, "planned failure", status)
				return
			}
		}
		_, _ = w.Write([]byte(helloBody))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			cs.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cs.addr = srv.Listener.Addr().String()
	return cs
}

func dialPoolT(t *testing.T, s Spec, n int) *Pool {
	t.Helper()
	p, err := DialPool(context.Background(), s, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestRunRequests(t *testing.T) {
	srv := newCountingServer(t, nil)
	p := dialPoolT(t, helloSpec(srv.addr), 3)
	res, err := p.Run(context.Background(), Options{Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || res.Errors != 0 || res.OK() != 200 || res.FirstError != nil {
		t.Fatalf("requests %d, errors %d, first error %v; want 200, 0", res.Requests, res.Errors, res.FirstError)
	}
	// One first request per connection from DialPool, then exactly 200,
	// all on the three connections.
	if got := srv.requests.Load(); got != 203 {
		t.Errorf("server saw %d requests, want 203", got)
	}
	if got := srv.conns.Load(); got != 3 {
		t.Errorf("server saw %d connections, want 3", got)
	}
	if len(res.Latencies) != 200 || !slices.IsSorted(res.Latencies) || res.Latencies[0] <= 0 {
		t.Errorf("latencies: %d, sorted %v, want 200 sorted and positive", len(res.Latencies), slices.IsSorted(res.Latencies))
	}
	if p50, p99, mx := res.Percentile(0.5), res.Percentile(0.99), res.Max(); !(p50 <= p99 && p99 <= mx && mx > 0) {
		t.Errorf("p50 %v, p99 %v, max %v", p50, p99, mx)
	}
	if res.Statuses[200] != 200 || len(res.Statuses) != 1 {
		t.Errorf("statuses %v, want 200:200", res.Statuses)
	}
	if runtime.GOOS == "linux" && res.CPU <= 0 {
		t.Errorf("CPU %v, want the process's CPU time", res.CPU)
	}
	if res.Aborted || res.Interrupted || res.Elapsed <= 0 {
		t.Errorf("result %+v", res)
	}
}

func TestRunDurationAndWarmup(t *testing.T) {
	srv := newCountingServer(t, nil)
	p := dialPoolT(t, helloSpec(srv.addr), 2)
	const d = 150 * time.Millisecond
	res, err := p.Run(context.Background(), Options{Duration: d, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || len(res.Latencies) != res.Requests {
		t.Fatalf("requests %d, errors %d, latencies %d", res.Requests, res.Errors, len(res.Latencies))
	}
	if res.WarmupRequests == 0 {
		t.Error("no warm-up requests")
	}
	if res.Elapsed < d {
		t.Errorf("elapsed %v, want at least %v", res.Elapsed, d)
	}
	if got, want := srv.requests.Load(), int64(2+res.WarmupRequests+res.Requests); got != want {
		t.Errorf("server saw %d requests, want %d (2 first + warm-up + measured)", got, want)
	}
}

// A failed request is counted with its status and its connection is
// replaced; MaxErrors < 0 runs to the end.
func TestRunCountsErrorsAndRedials(t *testing.T) {
	srv := newCountingServer(t, func(n int64) int {
		if n%10 == 0 {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	p := dialPoolT(t, helloSpec(srv.addr), 2)
	res, err := p.Run(context.Background(), Options{Requests: 100, MaxErrors: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Requests 1 and 2 were DialPool's; 3..102 the run's: 10 of them are
	// multiples of 10.
	if res.Requests != 100 || res.Errors != 10 || res.Aborted {
		t.Fatalf("requests %d, errors %d, aborted %v; want 100, 10, false", res.Requests, res.Errors, res.Aborted)
	}
	if res.Statuses[200] != 90 || res.Statuses[503] != 10 {
		t.Errorf("statuses %v, want 200:90 503:10", res.Statuses)
	}
	if len(res.Latencies) != 90 {
		t.Errorf("%d latencies, want the 90 successful requests'", len(res.Latencies))
	}
	if !errors.Is(res.FirstError, ErrStatus) || !strings.Contains(res.FirstError.Error(), "503") {
		t.Errorf("first error %v, want a 503 status error", res.FirstError)
	}
	// A failed connection is redialed by its worker's next request, so
	// each worker's last failure may go without one when the other worker
	// takes the run's remaining requests.
	if got := srv.conns.Load(); got < 2+10-2 || got > 2+10 {
		t.Errorf("server saw %d connections, want 10 to 12 (2, and one per failure but each worker's last)", got)
	}
}

func TestRunStopsAtMaxErrors(t *testing.T) {
	srv := newCountingServer(t, func(n int64) int {
		if n > 2 {
			return http.StatusInternalServerError
		}
		return 0
	})
	p := dialPoolT(t, helloSpec(srv.addr), 2)
	res, err := p.Run(context.Background(), Options{Requests: 1000, MaxErrors: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The fourth error stops the run; the other worker may have one more
	// in flight.
	if !res.Aborted || res.Errors < 4 || res.Errors > 5 || res.OK() != 0 {
		t.Fatalf("aborted %v, errors %d, ok %d; want aborted after 4 or 5 errors", res.Aborted, res.Errors, res.OK())
	}
	if s := res.Summary(); s.Stopped != "max-errors" || s.FirstError == "" {
		t.Errorf("summary stopped %q, first error %q", s.Stopped, s.FirstError)
	}
}

// A server that went away: every redial fails, counted as an error, spaced
// by the backoff rather than spinning.
func TestRunServerGone(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(helloBody))
	}))
	p := dialPoolT(t, helloSpec(srv.Listener.Addr().String()), 1)
	srv.Close()
	res, err := p.Run(context.Background(), Options{Duration: 200 * time.Millisecond, MaxErrors: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() != 0 || res.Errors == 0 || res.Errors > 10 {
		t.Fatalf("ok %d, errors %d; want only errors, a few per 200ms", res.OK(), res.Errors)
	}
}

// Cancelling the context closes the connections: requests stuck on a server
// that does not answer end at once, uncounted, and the pool is closed.
func TestRunInterrupted(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 2+10 {
			<-release
		}
		_, _ = w.Write([]byte(helloBody))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for handlers
	s := helloSpec(srv.Listener.Addr().String())
	s.Timeout = time.Minute
	p := dialPoolT(t, s, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() {
		res, err := p.Run(ctx, Options{Duration: time.Minute})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	testutil.Eventually(t, 10*time.Second, time.Millisecond, func() error {
		if k := n.Load(); k < 2+10+2 {
			return fmt.Errorf("%d requests, waiting for both connections to be stuck at 14", k)
		}
		return nil
	})
	cancel()
	var res Result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of the cancel")
	}
	if !res.Interrupted || res.Errors != 0 || res.Requests != 10 {
		t.Fatalf("interrupted %v, errors %d, requests %d; want true, 0, 10", res.Interrupted, res.Errors, res.Requests)
	}
	if s := res.Summary(); s.Stopped != "interrupted" {
		t.Errorf("summary stopped %q", s.Stopped)
	}
	if _, err := p.Run(context.Background(), Options{Requests: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after an interrupted one: %v, want ErrClosed", err)
	}
}

func TestDialPoolFailures(t *testing.T) {
	srv := newCountingServer(t, func(int64) int { return http.StatusNotFound })
	_, err := DialPool(context.Background(), helloSpec(srv.addr), 3)
	if !errors.Is(err, ErrStatus) || !strings.Contains(err.Error(), "first request on connection 1") {
		t.Errorf("a 404 target: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	if _, err := DialPool(context.Background(), helloSpec(addr), 1); err == nil || !strings.Contains(err.Error(), "dial") {
		t.Errorf("a closed port: %v", err)
	}
	if _, err := DialPool(context.Background(), helloSpec(addr), 0); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("0 connections: %v", err)
	}
	if _, err := DialPool(context.Background(), Spec{Addr: addr, Method: "GET /"}, 1); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("bad method: %v", err)
	}
}

func TestRunOptions(t *testing.T) {
	srv := newCountingServer(t, nil)
	p := dialPoolT(t, helloSpec(srv.addr), 1)
	for _, o := range []Options{
		{},
		{Requests: 10, Duration: time.Second},
		{Requests: -1},
		{Duration: -time.Second},
		{Requests: 1, Warmup: -time.Second},
	} {
		if _, err := p.Run(context.Background(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v, want ErrInvalidOptions", o, err)
		}
	}
	_ = p.Close()
	if _, err := p.Run(context.Background(), Options{Requests: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("closed pool: %v", err)
	}
}

func TestSummary(t *testing.T) {
	r := Result{
		Requests: 4, Errors: 1, Elapsed: 2 * time.Second, CPU: time.Second,
		Latencies:  []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond},
		Statuses:   map[int]int{200: 3, 500: 1},
		FirstError: errors.New("boom"),
	}
	s := r.Summary()
	want := Summary{
		Requests: 4, OK: 3, Errors: 1, ElapsedSeconds: 2, RPS: 1.5,
		LatencyMS:           Latency{P50: 2, P90: 3, P99: 3, Max: 3},
		CPUMicrosPerRequest: 250000, CPUCores: 0.5,
		Statuses: r.Statuses, FirstError: "boom",
	}
	if s.Requests != want.Requests || s.OK != want.OK || s.RPS != want.RPS || s.LatencyMS != want.LatencyMS ||
		s.CPUMicrosPerRequest != want.CPUMicrosPerRequest || s.CPUCores != want.CPUCores || s.FirstError != want.FirstError || s.Stopped != "" {
		t.Errorf("summary\n%+v\nwant\n%+v", s, want)
	}
	if z := (&Result{}).Summary(); z.RPS != 0 || z.LatencyMS != (Latency{}) || z.Statuses == nil {
		t.Errorf("empty result's summary %+v", z)
	}
}
