package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// benchServer answers `{"message":"hello, x"}`, or fail(n)'s status when it
// is not 0 for the n-th request (1-based, over all connections), and counts
// requests.
type benchServer struct {
	url      string
	requests atomic.Int64
}

func newBenchServer(t *testing.T, fail func(n int64) int) *benchServer {
	t.Helper()
	bs := &benchServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := bs.requests.Add(1)
		if fail != nil {
			if status := fail(n); status != 0 {
				http.Error(w, "planned failure", status)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"message":"hello, x"}`)
	}))
	t.Cleanup(srv.Close)
	bs.url = srv.URL + "/hello?name=x"
	return bs
}

func TestBenchCountsRequestsAndPrintsJSON(t *testing.T) {
	srv := newBenchServer(t, nil)
	code, out, errOut := runCmd(t, "bench", "-n", "200", "-c", "4", "-o", "json", srv.url)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	for k, want := range map[string]any{
		"url": srv.url, "method": "GET", "concurrency": 4.0,
		"requests": 200.0, "ok": 200.0, "errors": 0.0,
	} {
		if rep[k] != want {
			t.Errorf("%s = %v, want %v", k, rep[k], want)
		}
	}
	for _, k := range []string{"elapsed_seconds", "rps", "cpu_us_per_request", "cpu_cores"} {
		if v, ok := rep[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, rep[k])
		}
	}
	lat, _ := rep["latency_ms"].(map[string]any)
	p50, _ := lat["p50"].(float64)
	p90, _ := lat["p90"].(float64)
	p99, _ := lat["p99"].(float64)
	mx, _ := lat["max"].(float64)
	if !(0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= mx) {
		t.Errorf("latency_ms = %v, want 0 < p50 <= p90 <= p99 <= max", rep["latency_ms"])
	}
	if st, _ := rep["statuses"].(map[string]any); len(st) != 1 || st["200"] != 200.0 {
		t.Errorf("statuses = %v, want {200: 200}", rep["statuses"])
	}
	for _, k := range []string{"first_error", "stopped", "warmup_requests"} {
		if _, ok := rep[k]; ok {
			t.Errorf("%s present in a clean run: %v", k, rep[k])
		}
	}
	// One request per connection before the clock, then exactly -n.
	if got := srv.requests.Load(); got != 204 {
		t.Errorf("server saw %d requests, want 204 (4 first + 200)", got)
	}
}

// An https:// URL is loaded over TLS, verified with --ca (here the test
// server's own self-signed certificate); without it the system's roots do
// not trust that certificate and the run fails before the clock starts.
func TestBenchOverHTTPS(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = io.WriteString(w, `{"message":"hello, x"}`)
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	u := srv.URL + "/hello?name=x"

	code, out, errOut := runCmd(t, "bench", "-n", "100", "-c", "2", "--ca", ca, "--expect-body", `{"message":"hello, x"}`, "-o", "json", u)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep struct{ Requests, OK, Errors int }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Requests != 100 || rep.OK != 100 || rep.Errors != 0 {
		t.Fatalf("report %+v, %v; want 100 requests, all ok\n%s", rep, err, out)
	}

	code, _, errOut = runCmd(t, "bench", "-n", "10", u)
	if code != 1 || !strings.Contains(errOut, "TLS handshake") || !strings.Contains(errOut, "certificate") {
		t.Fatalf("without --ca: exit %d, stderr %q; want 1 and the untrusted certificate", code, errOut)
	}
}

func TestBenchText(t *testing.T) {
	srv := newBenchServer(t, nil)
	code, out, errOut := runCmd(t, "bench", srv.url, "-n", "50", "--concurrency", "2", "--expect-body", `{"message":"hello, x"}`)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	flat := strings.Join(strings.Fields(out), " ") // the table's column width aside
	for _, want := range []string{
		"GET " + srv.url + ", 2 connections, ", "requests 50 (50 ok, 0 errors) throughput ", " req/s latency p50 ",
		" ms, p99 ", "statuses 200: 50 generator ", " µs CPU per request, ", " cores",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "bench: GET "+srv.url+", 2 connections, 50 requests; Ctrl-C stops early") {
		t.Errorf("stderr = %q", errOut)
	}
}

func TestBenchDurationAndWarmup(t *testing.T) {
	srv := newBenchServer(t, nil)
	code, out, errOut := runCmd(t, "bench", "-d", "150ms", "--warmup", "50ms", "-c", "2", "-o", "json", srv.url)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep struct {
		Requests       int     `json:"requests"`
		WarmupRequests int     `json:"warmup_requests"`
		Elapsed        float64 `json:"elapsed_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.WarmupRequests == 0 || rep.Elapsed < 0.15 {
		t.Errorf("report %+v, want requests and warm-up requests over at least 0.15 s", rep)
	}
	if got, want := srv.requests.Load(), int64(2+rep.WarmupRequests+rep.Requests); got != want {
		t.Errorf("server saw %d requests, want %d", got, want)
	}
}

// Every 10th request the server sees fails with 503: the run stops at the
// first (exit 1), unless --max-errors allows them.
func TestBenchErrors(t *testing.T) {
	every10th := func(n int64) int {
		if n%10 == 0 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	type report struct {
		Requests, OK, Errors int
		Statuses             map[string]int `json:"statuses"`
		FirstError           string         `json:"first_error"`
		Stopped              string         `json:"stopped"`
	}
	run := func(t *testing.T, args ...string) (int, report, string) {
		t.Helper()
		srv := newBenchServer(t, every10th)
		code, out, errOut := runCmd(t, append([]string{"bench", "-n", "100", "-c", "2", "-o", "json", srv.url}, args...)...)
		var rep report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("exit %d, -o json: %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
		}
		return code, rep, errOut
	}

	t.Run("default stops at the first error", func(t *testing.T) {
		code, rep, errOut := run(t)
		if code != 1 || rep.Stopped != "max-errors" || rep.Errors < 1 || rep.Errors > 2 {
			t.Errorf("exit %d, report %+v; want 1, stopped at 1 or 2 errors", code, rep)
		}
		if !strings.Contains(rep.FirstError, "unexpected status 503") {
			t.Errorf("first_error = %q", rep.FirstError)
		}
		if !strings.Contains(errOut, "requests failed (--max-errors 0); first: unexpected status 503") {
			t.Errorf("stderr = %q", errOut)
		}
	})
	t.Run("any tolerated", func(t *testing.T) {
		code, rep, errOut := run(t, "--max-errors", "-1")
		// Requests 1 and 2 were the connections' first; 3..102 the run's,
		// ten of them multiples of 10. Each failure redials.
		if code != 0 || rep.Requests != 100 || rep.OK != 90 || rep.Errors != 10 || rep.Stopped != "" {
			t.Errorf("exit %d, report %+v (stderr %q); want 0, 100 requests, 90 ok, 10 errors", code, rep, errOut)
		}
		if rep.Statuses["200"] != 90 || rep.Statuses["503"] != 10 {
			t.Errorf("statuses = %v", rep.Statuses)
		}
	})
	t.Run("exactly as many as tolerated", func(t *testing.T) {
		if code, rep, _ := run(t, "--max-errors", "10"); code != 0 || rep.Errors != 10 {
			t.Errorf("exit %d, errors %d; want 0, 10", code, rep.Errors)
		}
	})
	t.Run("one more than tolerated", func(t *testing.T) {
		if code, rep, _ := run(t, "--max-errors", "9"); code != 1 || rep.Errors < 10 {
			t.Errorf("exit %d, errors %d; want 1, at least 10", code, rep.Errors)
		}
	})
}

func TestBenchFailsBeforeTheClock(t *testing.T) {
	srv := newBenchServer(t, func(int64) int { return http.StatusNotFound })
	code, out, errOut := runCmd(t, "bench", "-n", "10", srv.url)
	if code != 1 || out != "" || !strings.Contains(errOut, "first request on connection 1: unexpected status 404 (want 200)") {
		t.Errorf("a 404 URL: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	code, _, errOut = runCmd(t, "bench", "-n", "10", "http://"+addr+"/")
	if code != 1 || !strings.Contains(errOut, "dial "+addr) {
		t.Errorf("a closed port: exit %d, stderr %q", code, errOut)
	}
}

// Method, headers, Host, body and the expectations reach the wire.
func TestBenchRequestOptions(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s host=%s x=%s body=%s", r.Method, r.URL.Path, r.Host, r.Header.Get("X-Test"), body))
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "created")
	}))
	t.Cleanup(srv.Close)
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(bodyFile, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}

	args := []string{"bench", "-n", "2", "-c", "1", "-m", "post", "-H", "X-Test: a:b", "--header", "Host: example.test",
		"--expect-status", "201", "--expect-body", "created", srv.URL + "/in"}
	if code, out, errOut := runCmd(t, append(args, "--body", "hi")...); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, append(args, "--body-file", bodyFile)...); code != 0 {
		t.Fatalf("--body-file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	mu.Lock()
	got := seen
	mu.Unlock()
	want := "POST /in host=example.test x=a:b body=hi"
	wantFile := `POST /in host=example.test x=a:b body={"a":1}`
	if len(got) != 6 || got[0] != want || got[2] != want || got[3] != wantFile || got[5] != wantFile {
		t.Errorf("server saw:\n%s\nwant 3 × %q then 3 × %q", strings.Join(got, "\n"), want, wantFile)
	}

	code, _, errOut := runCmd(t, "bench", "-n", "2", "--expect-status", "201", "--expect-body", "other", srv.URL)
	if code != 1 || !strings.Contains(errOut, `unexpected body: body "created" (7 bytes), want "other"`) {
		t.Errorf("a different body: exit %d, stderr %q", code, errOut)
	}
}

// Ctrl-C (the context ending) stops a run stuck on a server that stopped
// answering at once, not after --timeout, and still prints the report.
func TestBenchInterrupted(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 2+20 {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // first: srv.Close waits for the handlers
	b := startCmd(t, "bench", "-c", "2", "-d", "10m", "--timeout", "10m", "-o", "json", srv.URL)
	testutil.Eventually(t, 15*time.Second, 5*time.Millisecond, func() error {
		if k := n.Load(); k < 2+20+2 {
			return fmt.Errorf("%d requests, waiting for both connections to be stuck", k)
		}
		return nil
	})
	start := time.Now()
	if code := b.stop(t); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, b.stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to stop", d)
	}
	var rep struct {
		Requests, Errors int
		Stopped          string
	}
	if err := json.Unmarshal(b.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, b.stdout.String())
	}
	if rep.Requests != 20 || rep.Errors != 0 || rep.Stopped != "interrupted" {
		t.Errorf("report %+v, want 20 requests, 0 errors, stopped interrupted", rep)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	const u = "http://127.0.0.1:1/"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "missing <url>"},
		{[]string{u, "extra"}, `unexpected argument "extra"`},
		{[]string{"ftp://127.0.0.1:1/"}, "want an http:// or https:// URL"},
		{[]string{"127.0.0.1:1/x"}, "want an http:// or https:// URL"},
		{[]string{"--ca", "/nonexistent.pem", u}, "--ca: /nonexistent.pem verifies https:// URLs only"},
		{[]string{"--ca", "/nonexistent.pem", "https://127.0.0.1:1/"}, "--ca: open /nonexistent.pem"},
		{[]string{"-n", "10", "-d", "1s", u}, "--requests and --duration: give one of them"},
		{[]string{"-n", "-1", u}, "--requests: -1 is negative"},
		{[]string{"-d", "soon", u}, "not a duration"},
		{[]string{"--warmup", "-1s", u}, "must not be negative"},
		{[]string{"-c", "0", u}, "--concurrency: 0: want at least 1"},
		{[]string{"-c", "many", u}, "invalid value"},
		{[]string{"-H", "nocolon", u}, `--header "nocolon": want 'name: value'`},
		{[]string{"-H", "Content-Length: 5", u}, "header Content-Length is set by the load generator"},
		{[]string{"-H", "X: a\nB: c", u}, "value has control characters"},
		{[]string{"-m", "GET /", u}, "is not an HTTP token"},
		{[]string{"--expect-status", "99", u}, "expected status 99"},
		{[]string{"--max-errors", "-2", u}, "--max-errors: -2"},
		{[]string{"--timeout", "0s", u}, "--timeout: 0s must be positive"},
		{[]string{"-o", "xml", u}, "--output"},
		{[]string{"--body", "a", "--body-file", "f", u}, "--body and --body-file"},
		{[]string{"--body-file", filepath.Join(t.TempDir(), "missing"), u}, "--body-file:"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runCmd(t, append([]string{"bench"}, tt.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "Run 'nylon bench --help' for usage") {
				t.Errorf("stderr = %q, want %q and a --help hint", errOut, tt.want)
			}
		})
	}
}
