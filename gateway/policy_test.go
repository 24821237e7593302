package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// silent serves fn's phase and records calls without ever answering.
func (e *env) silent(fn string, ph protocol.Phase) *node {
	n := &node{}
	e.serveRaw(fn, ph, func(req micro.Request) {
		if c, ok := decodeCall(e.t, req); ok {
			n.record(c)
		}
	})
	return n
}

func TestTimeoutRetriesSameRequestIDThenDLQ(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	slow := e.silent("slow", protocol.PhaseRequestFilter)
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - name: slow
    messaging: nats
    per_phase:
      request_filter:
        timeout_ms: 60
        on_error: retry
        retry: {max: 2, backoff_ms_initial: 5, backoff_ms_max: 10}
routes:
  - {path: /s, upstream: "` + up.URL + `", plugins: [slow]}
`)
	const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	r := get(t, srv.URL+"/s", "traceparent", trace)
	wantStatus(t, r, http.StatusGatewayTimeout)
	p := r.problem(t)
	if p.Type != gateway.ProblemTimeout {
		t.Fatalf("problem %+v", p)
	}
	if up.hits.Load() != 0 {
		t.Fatal("upstream reached although the plugin failed with on_error retry")
	}
	if slow.count() != 3 {
		t.Fatalf("%d attempts, want 3 (1 + retry.max 2)", slow.count())
	}
	if slow.distinctIDs() != 1 {
		t.Fatalf("%d distinct request_ids over the retries, want 1", slow.distinctIDs())
	}
	id := slow.all()[0].Req.RequestID
	if p.RequestID != id.String() {
		t.Fatalf("problem request_id %s, want the call's %s", p.RequestID, id)
	}

	js := testutil.JetStream(t, e.nc)
	var dls []gateway.DeadLetter
	eventually(t, func() error {
		var err error
		dls, err = gateway.ListDLQ(context.Background(), js, prefix, 10)
		if err == nil && len(dls) != 1 {
			err = fmt.Errorf("%d dead letters, want 1", len(dls))
		}
		return err
	})
	d := dls[0]
	if d.Function != "slow" || d.Phase != protocol.PhaseRequestFilter || d.Kind != gateway.KindTimeout ||
		d.Attempts != 3 || d.RequestID != id || d.Route != "/s" || d.Plugin != "slow" ||
		!strings.HasPrefix(d.Traceparent, "00-0af7651916cd43dd8448eb211c80319c-") || d.Subject != "nylon.dev.dlq.slow.request_filter" {
		t.Fatalf("dead letter %+v", d)
	}
	var req protocol.PluginRequest
	if err := protocol.DecodeRequest(d.Payload, &req); err != nil || req.RequestID != id {
		t.Fatalf("dead letter payload: %v %+v", err, req)
	}
	labels := map[string]string{"plugin": "slow", "phase": "request_filter"}
	for name, want := range map[string]float64{
		"plugins_messaging_retries_total":  2,
		"plugins_messaging_timeouts_total": 3,
		"plugins_messaging_dlq_total":      1,
	} {
		if got := testutil.MetricSum(t, e.reg, name, labels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", map[string]string{"plugin": "slow", "kind": "Timeout"}); got != 3 {
		t.Errorf("errors_total{kind=Timeout} = %v, want 3", got)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_inflight", map[string]string{"plugin": "slow"}); got != 0 {
		t.Errorf("inflight = %v after the request", got)
	}
	logs := e.log.String()
	for _, want := range []string{"subject=nylon.dev.slow.request_filter", "queue=slow", "session_id=", "request_id=" + id.String(), "attempt=3", "traceparent=00-0af7651916cd43dd8448eb211c80319c-", "route=/s", "kind=Timeout", "dead-lettered"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

func TestOnErrorContinueAndEnd(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.silent("mute", protocol.PhaseRequestFilter)
	e.serveRaw("garbled", protocol.PhaseRequestFilter, func(req micro.Request) {
		_ = req.Respond([]byte{0xc1, 0x00, 0xff}) // 0xc1 is never valid msgpack
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: mute-continue, function: mute, messaging: nats, per_phase: {request_filter: {timeout_ms: 50, on_error: continue}}}
  - {name: mute-end, function: mute, messaging: nats, per_phase: {request_filter: {timeout_ms: 50, on_error: end}}}
  - {name: garbled-continue, function: garbled, messaging: nats, per_phase: {request_filter: {on_error: continue}}}
  - {name: garbled-end, function: garbled, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /timeout/continue, upstream: "` + up.URL + `", plugins: [mute-continue]}
  - {path: /timeout/end, upstream: "` + up.URL + `", plugins: [mute-end]}
  - {path: /decode/continue, upstream: "` + up.URL + `", plugins: [garbled-continue]}
  - {path: /decode/end, upstream: "` + up.URL + `", plugins: [garbled-end]}
`)
	wantStatus(t, get(t, srv.URL+"/timeout/continue"), 200)
	r := get(t, srv.URL+"/timeout/end")
	wantStatus(t, r, 504)
	if p := r.problem(t); p.Type != gateway.ProblemTimeout {
		t.Fatalf("problem %+v", p)
	}
	wantStatus(t, get(t, srv.URL+"/decode/continue"), 200)
	r = get(t, srv.URL+"/decode/end")
	wantStatus(t, r, 502)
	if p := r.problem(t); p.Type != gateway.ProblemBadReply {
		t.Fatalf("problem %+v", p)
	}
	if up.hits.Load() != 2 {
		t.Fatalf("upstream hits %d, want 2 (the continue routes)", up.hits.Load())
	}
}

func TestNoResponderFailsAtOnce(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - name: ghost
    messaging: nats
    per_phase:
      request_filter:
        timeout_ms: 3000
        on_error: retry
        retry: {max: 3, backoff_ms_initial: 1000, backoff_ms_max: 2000}
routes:
  - {path: /g, upstream: "` + up.URL + `", plugins: [ghost]}
`)
	r := get(t, srv.URL+"/g")
	wantStatus(t, r, 503)
	if p := r.problem(t); p.Type != gateway.ProblemNoResponder {
		t.Fatalf("problem %+v", p)
	}
	// A timeout would take 3 s, a backoff 1 s: neither may happen.
	if r.Elapsed > 500*time.Millisecond {
		t.Fatalf("no-responder answer took %v", r.Elapsed)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_retries_total", map[string]string{"plugin": "ghost"}); got != 0 {
		t.Fatalf("retried a NoResponder %v times", got)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", map[string]string{"plugin": "ghost", "kind": "NoResponder"}); got != 1 {
		t.Fatalf("errors_total{kind=NoResponder} = %v", got)
	}
}

func TestImplicitPhasesSkipUnservedOnes(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	rf := e.serve("tagger", protocol.PhaseRequestFilter, func(c *call) answer {
		return next(reqHeader("X-Tagged", "1"))
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: tagger, messaging: nats}
  - {name: ghost, messaging: nats, per_phase: {request_filter: {on_error: continue}}}
routes:
  - {path: /t, upstream: "` + up.URL + `", plugins: [tagger]}
  - {path: /g, upstream: "` + up.URL + `", plugins: [ghost]}
`)
	for range 3 {
		wantStatus(t, get(t, srv.URL+"/t"), 200)
	}
	if rf.count() != 3 || up.last.Load().Header.Get("X-Tagged") != "1" {
		t.Fatalf("request_filter calls %d, upstream header %q", rf.count(), up.last.Load().Header.Get("X-Tagged"))
	}
	// A phase nobody serves although the config names it is an error: it
	// shows the error counter works, so tagger's 0 below means something.
	wantStatus(t, get(t, srv.URL+"/g"), 200)
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", map[string]string{"plugin": "ghost", "kind": "NoResponder"}); got != 1 {
		t.Fatalf("errors_total{plugin=ghost, kind=NoResponder} = %v, want 1", got)
	}
	// The unserved phases tagger's config leaves implicit are neither
	// errors nor dead letters.
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", map[string]string{"plugin": "tagger"}); got != 0 {
		t.Fatalf("errors_total = %v for phases the plugin does not serve", got)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_dlq_total", map[string]string{"plugin": "tagger"}); got != 0 {
		t.Fatalf("dlq_total = %v", got)
	}
}

func TestLateReplyOfEarlierAttemptIgnored(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	var calls atomic.Int64
	second := make(chan struct{})
	lateSent := make(chan struct{})
	e.serveRaw("lagging", protocol.PhaseRequestFilter, func(req micro.Request) {
		c, ok := decodeCall(t, req)
		if !ok {
			return
		}
		switch calls.Add(1) {
		case 1:
			// Answer attempt 1 only once attempt 2 is on its way.
			go func() {
				<-second
				respond(req, c, end(status(418), body("late")))
				_ = e.nc.Flush()
				close(lateSent)
			}()
		case 2:
			close(second)
			go func() {
				<-lateSent
				respond(req, c, next(reqHeader("X-Attempt", "2")))
			}()
		}
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - name: lagging
    messaging: nats
    per_phase:
      request_filter: {timeout_ms: 100, on_error: retry, retry: {max: 1, backoff_ms_initial: 1, backoff_ms_max: 1}}
routes:
  - {path: /late, upstream: "` + up.URL + `", plugins: [lagging]}
`)
	r := get(t, srv.URL+"/late")
	wantStatus(t, r, 200)
	if got := up.last.Load().Header.Get("X-Attempt"); got != "2" {
		t.Fatalf("upstream X-Attempt %q: the late reply of attempt 1 was taken", got)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d attempts", calls.Load())
	}
}

func TestReplyForAnotherRequestIsDecodeError(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serveRaw("confused", protocol.PhaseRequestFilter, func(req micro.Request) {
		c, ok := decodeCall(t, req)
		if !ok {
			return
		}
		c.Req.RequestID = protocol.NewRequestID() // someone else's
		respond(req, c, next())
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: confused, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /c, upstream: "` + up.URL + `", plugins: [confused]}
`)
	r := get(t, srv.URL+"/c")
	wantStatus(t, r, 502)
	if !strings.Contains(e.log.String(), "reply is for request") {
		t.Fatalf("logs lack the request_id mismatch:\n%s", e.log.String())
	}
}

func TestUndecodableReplyThenRecovers(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	var calls atomic.Int64
	e.serveRaw("flaky", protocol.PhaseRequestFilter, func(req micro.Request) {
		c, ok := decodeCall(t, req)
		if !ok {
			return
		}
		if calls.Add(1) == 1 {
			_ = req.Respond([]byte("not msgpack at all"))
			return
		}
		respond(req, c, next())
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: flaky, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /f, upstream: "` + up.URL + `", plugins: [flaky]}
`)
	r := get(t, srv.URL+"/f")
	wantStatus(t, r, 502)
	if p := r.problem(t); p.Type != gateway.ProblemBadReply || strings.Contains(p.Detail, "msgpack") {
		t.Fatalf("problem %+v: want bad-reply without internals", p)
	}
	logs := e.log.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "kind=Decode") {
		t.Fatalf("no error log for the undecodable reply:\n%s", logs)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", map[string]string{"plugin": "flaky", "kind": "Decode"}); got != 1 {
		t.Fatalf("errors_total{kind=Decode} = %v", got)
	}
	wantStatus(t, get(t, srv.URL+"/f"), 200) // and the gateway keeps serving
}

func TestServiceErrorReplies(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	var busy atomic.Int64
	e.serveRaw("busy", protocol.PhaseRequestFilter, func(req micro.Request) {
		busy.Add(1)
		_ = req.Error("503", "overloaded", nil)
	})
	e.serveRaw("big", protocol.PhaseRequestFilter, func(req micro.Request) {
		_ = req.Error("413", "too large", nil)
	})
	e.serveRaw("picky", protocol.PhaseRequestFilter, func(req micro.Request) {
		_ = req.Error("400", "cannot decode", nil)
	})
	e.serveRaw("broken", protocol.PhaseRequestFilter, func(req micro.Request) {
		_ = req.Error("500", "internal: stack trace here", nil)
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: busy, messaging: nats, per_phase: {request_filter: {on_error: retry, retry: {max: 2, backoff_ms_initial: 1, backoff_ms_max: 2}}}}
  - {name: big, messaging: nats, per_phase: {request_filter: {on_error: retry, retry: {max: 2}}}}
  - {name: picky, messaging: nats, per_phase: {request_filter: {}}}
  - {name: broken, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /busy, upstream: "` + up.URL + `", plugins: [busy]}
  - {path: /big, upstream: "` + up.URL + `", plugins: [big]}
  - {path: /picky, upstream: "` + up.URL + `", plugins: [picky]}
  - {path: /broken, upstream: "` + up.URL + `", plugins: [broken]}
`)
	r := get(t, srv.URL+"/busy")
	wantStatus(t, r, 503)
	if p := r.problem(t); p.Type != gateway.ProblemOverloaded || r.Header.Get("Retry-After") == "" {
		t.Fatalf("overloaded: %+v %v", p, r.Header)
	}
	if busy.Load() != 3 {
		t.Fatalf("overloaded node asked %d times, want 3 (retryable)", busy.Load())
	}
	r = get(t, srv.URL+"/big")
	wantStatus(t, r, 413)
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_retries_total", map[string]string{"plugin": "big"}); got != 0 {
		t.Fatalf("too large retried %v times", got)
	}
	r = get(t, srv.URL+"/picky")
	wantStatus(t, r, 502)
	if p := r.problem(t); p.Type != gateway.ProblemBadReply {
		t.Fatalf("decode: %+v", p)
	}
	r = get(t, srv.URL+"/broken")
	wantStatus(t, r, 502)
	if p := r.problem(t); p.Type != gateway.ProblemNodeError || strings.Contains(r.Body, "stack trace") {
		t.Fatalf("internal: %+v leaks or misnames", p)
	}
}

func TestPluginErrorStatus(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("boom", protocol.PhaseRequestFilter, func(c *call) answer {
		return answer{Action: protocol.ActionError, Error: "db password rejected"}
	})
	e.serve("gatekeeper", protocol.PhaseRequestFilter, func(c *call) answer {
		return answer{Action: protocol.ActionError, Error: "tenant suspended", Ops: []protocol.Op{status(403)}}
	})
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: boom, messaging: nats, per_phase: {request_filter: {on_error: retry, retry: {max: 3}}}}
  - {name: gatekeeper, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /boom, upstream: "` + up.URL + `", plugins: [boom]}
  - {path: /gate, upstream: "` + up.URL + `", plugins: [gatekeeper]}
`)
	r := get(t, srv.URL+"/boom")
	wantStatus(t, r, 500)
	if p := r.problem(t); p.Type != gateway.ProblemPluginError || strings.Contains(r.Body, "password") {
		t.Fatalf("plugin error %+v leaks the handler's message", p)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_retries_total", map[string]string{"plugin": "boom"}); got != 0 {
		t.Fatalf("plugin error retried %v times", got)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_dlq_total", map[string]string{"plugin": "boom"}); got != 0 {
		t.Fatalf("plugin error dead-lettered")
	}
	r = get(t, srv.URL+"/gate")
	wantStatus(t, r, 403)
	if p := r.problem(t); p.Detail != "tenant suspended" {
		t.Fatalf("problem %+v: the plugin chose the status, its message is the detail", p)
	}
}

func TestPayloadLimitPerPhase(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	n := e.serve("small", protocol.PhaseRequestFilter, func(c *call) answer { return next() })
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: small, messaging: nats, per_phase: {request_filter: {max_payload_bytes: 600}}}
routes:
  - {path: /p, upstream: "` + up.URL + `", plugins: [small]}
`)
	wantStatus(t, do(t, http.MethodPost, srv.URL+"/p", "tiny"), 200)
	r := do(t, http.MethodPost, srv.URL+"/p", strings.Repeat("x", 1000))
	wantStatus(t, r, 413)
	if n.count() != 1 {
		t.Fatalf("the oversized request reached the node")
	}
}
