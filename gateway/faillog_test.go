package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// logRec is one JSON log record.
type logRec map[string]any

func (r logRec) str(k string) string {
	v, ok := r[k]
	if !ok {
		return ""
	}
	if f, ok := v.(float64); ok {
		return fmt.Sprint(int64(f))
	}
	return fmt.Sprint(v)
}

// suppressed is the count of a summary line, nil for a line written.
func (r logRec) suppressed() *int {
	v, ok := r["suppressed"].(float64)
	if !ok {
		return nil
	}
	n := int(v)
	return &n
}

// jsonLogger logs at DEBUG as JSON to buf, one record a line.
func jsonLogger(buf *testutil.SyncBuffer) gateway.Option {
	return gateway.WithLogger(slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

func parseLogs(t testing.TB, b []byte) []logRec {
	t.Helper()
	var out []logRec
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r logRec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// loud returns the WARN and ERROR records.
func loud(recs []logRec) []logRec {
	var out []logRec
	for _, r := range recs {
		if l := r.str("level"); l == "WARN" || l == "ERROR" {
			out = append(out, r)
		}
	}
	return out
}

// waitLoud waits for n WARN or ERROR records, then for any stray one to
// show, and returns them all.
func waitLoud(t *testing.T, buf *testutil.SyncBuffer, n int) ([]logRec, []logRec) {
	t.Helper()
	eventually(t, func() error {
		if got := len(loud(parseLogs(t, buf.Bytes()))); got < n {
			return fmt.Errorf("%d WARN/ERROR lines, want %d", got, n)
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond) // a second line would be written by now
	all := parseLogs(t, buf.Take())
	return all, loud(all)
}

func wantFields(t *testing.T, r logRec, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := r.str(k); got != v {
			t.Errorf("%s=%q, want %q in %v", k, got, v, r)
		}
	}
}

// A failed request logs exactly one WARN line carrying everything about
// the failure, whatever the attempts, the dead letter and the problem; the
// attempts and the dead letter are DEBUG detail; a success logs nothing
// above INFO. Before, a no-responder 503 logged three WARN lines ("phase
// call failed", "request dead-lettered", "request failed") and a timeout
// retried twice five.
func TestFailedRequestLogsOneLine(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("fine", protocol.PhaseRequestFilter, func(*call) answer { return next() })
	slow := e.silent("slow", protocol.PhaseRequestFilter)
	e.silent("mute", protocol.PhaseRequestFilter)
	var buf testutil.SyncBuffer
	_, srv := e.gateway(yamlMessaging("")+`
plugins:
  - {name: nobody, messaging: nats, per_phase: {request_filter: {timeout_ms: 200}}}
  - {name: fine, messaging: nats, per_phase: {request_filter: {}}}
  - name: slow
    messaging: nats
    per_phase:
      request_filter: {timeout_ms: 60, on_error: retry, retry: {max: 2, backoff_ms_initial: 5, backoff_ms_max: 10}}
  - {name: mute-continue, function: mute, messaging: nats, per_phase: {request_filter: {timeout_ms: 50, on_error: continue}}}
  - {name: ghostlog, messaging: nats, per_phase: {logging: {}}}
  - {name: ghostbody, messaging: nats, per_phase: {response_body_filter: {}}}
routes:
  - {path: /x, upstream: "`+up.URL+`", plugins: [nobody]}
  - {path: /ok, upstream: "`+up.URL+`", plugins: [fine]}
  - {path: /s, upstream: "`+up.URL+`", plugins: [slow]}
  - {path: /c, upstream: "`+up.URL+`", plugins: [mute-continue]}
  - {path: /l, upstream: "`+up.URL+`", plugins: [ghostlog]}
  - {path: /b, upstream: "`+up.URL+`", plugins: [ghostbody]}
`, jsonLogger(&buf))
	const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

	t.Run("success", func(t *testing.T) {
		wantStatus(t, get(t, srv.URL+"/ok"), 200)
		time.Sleep(50 * time.Millisecond)
		if l := loud(parseLogs(t, buf.Take())); len(l) != 0 {
			t.Fatalf("a success logged %d WARN/ERROR lines: %v", len(l), l)
		}
	})

	t.Run("no responder", func(t *testing.T) {
		r := get(t, srv.URL+"/x", "traceparent", trace)
		wantStatus(t, r, 503)
		p := r.problem(t)
		all, l := waitLoud(t, &buf, 1)
		if len(l) != 1 {
			t.Fatalf("%d WARN/ERROR lines for one failed request, want 1: %v", len(l), l)
		}
		wantFields(t, l[0], map[string]string{
			"level": "WARN", "msg": "gateway: request failed", "route": "/x", "plugin": "nobody",
			"phase": "request_filter", "status": "503", "kind": "NoResponder", "attempts": "1",
			"dead_lettered": "true", "dlq_subject": "nylon.dev.dlq.nobody.request_filter", "request_id": p.RequestID,
		})
		if !strings.HasPrefix(l[0].str("traceparent"), "00-0af7651916cd43dd8448eb211c80319c-") ||
			l[0].str("session_id") == "" || !strings.Contains(l[0].str("error"), "no responder") {
			t.Errorf("traceparent, session_id or error missing: %v", l[0])
		}
		// The detail is still there, at DEBUG, under the same request id.
		detail := map[string]bool{}
		for _, r := range all {
			if r.str("level") == "DEBUG" && r.str("request_id") == p.RequestID {
				detail[r.str("msg")] = true
			}
		}
		if !detail["gateway: phase call failed"] || !detail["gateway: request dead-lettered"] {
			t.Errorf("DEBUG detail lines %v, want the attempt and the dead letter", detail)
		}
	})

	t.Run("timeout after retries", func(t *testing.T) {
		r := get(t, srv.URL+"/s", "traceparent", trace)
		wantStatus(t, r, 504)
		_, l := waitLoud(t, &buf, 1)
		if len(l) != 1 {
			t.Fatalf("%d WARN/ERROR lines for one request failed after 3 attempts, want 1: %v", len(l), l)
		}
		wantFields(t, l[0], map[string]string{
			"msg": "gateway: request failed", "route": "/s", "plugin": "slow", "status": "504", "kind": "Timeout",
			"attempts": "3", "dead_lettered": "true", "request_id": slow.all()[0].Req.RequestID.String(),
		})
	})

	t.Run("on_error continue", func(t *testing.T) {
		wantStatus(t, get(t, srv.URL+"/c"), 200)
		_, l := waitLoud(t, &buf, 1)
		if len(l) != 1 {
			t.Fatalf("%d WARN/ERROR lines for one skipped plugin, want 1: %v", len(l), l)
		}
		wantFields(t, l[0], map[string]string{
			"msg": "gateway: plugin skipped after error (on_error continue)", "route": "/c", "plugin": "mute-continue",
			"phase": "request_filter", "kind": "Timeout", "attempts": "1", "dead_lettered": "true",
			"dlq_subject": "nylon.dev.dlq.mute.request_filter",
		})
		if l[0].str("request_id") == "" || l[0].str("status") != "" {
			t.Errorf("want a request_id and no status (the request went on): %v", l[0])
		}
	})

	t.Run("response_body_filter", func(t *testing.T) {
		// The headers are out when the filter fails: the response is
		// aborted (the client sees the connection close).
		if resp, err := oneShot().Get(srv.URL + "/b"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		_, l := waitLoud(t, &buf, 1)
		if len(l) != 1 {
			t.Fatalf("%d WARN/ERROR lines for one aborted response, want 1: %v", len(l), l)
		}
		wantFields(t, l[0], map[string]string{
			"msg": "gateway: request failed", "route": "/b", "plugin": "ghostbody", "phase": "response_body_filter",
			"status": "200", "aborted": "true", "kind": "NoResponder", "dead_lettered": "true",
		})
	})

	t.Run("logging call", func(t *testing.T) {
		wantStatus(t, get(t, srv.URL+"/l"), 200)
		_, l := waitLoud(t, &buf, 1)
		if len(l) != 1 {
			t.Fatalf("%d WARN/ERROR lines for one failed logging call, want 1: %v", len(l), l)
		}
		wantFields(t, l[0], map[string]string{
			"msg": "gateway: logging call failed", "route": "/l", "plugin": "ghostlog", "phase": "logging",
			"kind": "NoResponder", "dead_lettered": "true",
		})
	})
}

// An upstream that fails in the middle of its body aborts the response:
// one line says so, with the read error, instead of the reverse proxy's
// own unstructured, unsampled one.
func TestUpstreamFailingMidBodyLogsOneLine(t *testing.T) {
	e := newEnv(t)
	var buf testutil.SyncBuffer
	_, srv := e.gateway(yamlMessaging("")+`
routes:
  - {path: /cut, upstream: "`+cutUpstream(t)+`"}
`, jsonLogger(&buf))
	// The client sees the connection closed: before the headers (they
	// were still buffered) or in the body.
	if resp, err := oneShot().Get(srv.URL + "/cut"); err == nil {
		_, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Fatal("the cut response read to the end")
		}
	}
	_, l := waitLoud(t, &buf, 1)
	if len(l) != 1 {
		t.Fatalf("%d WARN/ERROR lines for one aborted response, want 1: %v", len(l), l)
	}
	wantFields(t, l[0], map[string]string{"msg": "gateway: request failed", "route": "/cut", "status": "200",
		"aborted": "true", "kind": "Upstream"})
	if !strings.Contains(l[0].str("error"), "reading the response body") {
		t.Errorf("error %q, want the read error", l[0].str("error"))
	}
}

// 2000 requests failing in a burst log at most the sampler's budget (10
// per second for the route and plugin) and summaries whose suppressed
// counts add up exactly to the rest, the last within a few seconds of the
// burst's end; the metrics count every failure.
func TestFailureStormIsSampled(t *testing.T) {
	e := newEnv(t)
	var buf testutil.SyncBuffer
	_, srv := e.gateway(`messaging:
  - name: nats
    type: nats
    subject_prefix: "nylon.dev"
    dlq: {disabled: true}
`+deadLetterRoute, jsonLogger(&buf))
	const total, workers = 2000, 16
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				resp, err := client.Get(srv.URL + "/x")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 503 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	burst := time.Since(start)
	if failed.Load() != total {
		t.Fatalf("%d requests failed with 503, want %d", failed.Load(), total)
	}

	var others []logRec
	testutil.WaitSampled(t, "gateway: request failed", total, burst, func() testutil.SampledLines {
		var n testutil.SampledLines
		others = nil
		for _, r := range loud(parseLogs(t, buf.Bytes())) {
			if r.str("msg") != "gateway: request failed" {
				others = append(others, r)
				continue
			}
			if r.str("suppressed") != "" && (r.str("route") != "/x" || r.str("plugin") != "nobody" || r.str("interval") == "") {
				t.Errorf("summary %v, want route /x, plugin nobody and the interval", r)
			}
			n.Add(r.suppressed())
		}
		return n
	})
	if len(others) != 0 {
		t.Errorf("%d other WARN/ERROR lines: %v", len(others), others[:min(3, len(others))])
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", map[string]string{"plugin": "nobody", "kind": "NoResponder"}); got != total {
		t.Errorf("errors_total{kind=NoResponder} = %v, want every failure (%d)", got, total)
	}
}

// A plugin that sends a refused header op with every reply (a reserved
// response header, and a request header with a CR) logs a bounded number
// of "gateway: header op refused" lines per header and summaries counting
// the rest, while every request still succeeds without the header. Before,
// each reply wrote a WARN line per refused op.
func TestHeaderOpRefusalsAreSampled(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("rude", protocol.PhaseRequestFilter, func(*call) answer {
		return next(respHeader("Connection", "close"), reqHeader("X-Bad", "a\r\nb"))
	})
	var buf testutil.SyncBuffer
	_, srv := e.gateway(yamlMessaging("")+`
plugins:
  - name: rude
    messaging: nats
    per_phase:
      request_filter: {}
routes:
  - {path: /r, upstream: "`+up.URL+`", plugins: [rude]}
`, jsonLogger(&buf))

	const total = 60
	start := time.Now()
	for range total {
		r := get(t, srv.URL+"/r")
		wantStatus(t, r, 200)
		if r.Header.Get("X-Upstream") != "yes" {
			t.Fatalf("response headers %v: the upstream's answer was not passed on", r.Header)
		}
	}
	burst := time.Since(start)

	for _, header := range []string{"Connection", "X-Bad"} {
		testutil.WaitSampled(t, "header op refused: "+header, total, burst, func() testutil.SampledLines {
			var n testutil.SampledLines
			for _, r := range loud(parseLogs(t, buf.Bytes())) {
				if r.str("msg") == "gateway: header op refused" && r.str("header") == header {
					n.Add(r.suppressed())
				}
			}
			return n
		})
	}
}
