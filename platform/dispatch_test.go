package platform_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// count returns the X-Count header of a counter reply: how many calls the
// (single) instance has run.
func count(t *testing.T, resp *protocol.PluginResponse) int {
	t.Helper()
	n, err := strconv.Atoi(header(t, resp, "X-Count"))
	if err != nil {
		t.Fatalf("X-Count: %v (action %v, error %q)", err, resp.Action, resp.Error)
	}
	return n
}

func TestDuplicateRequestRunsOnce(t *testing.T) {
	e := newEnv(t)
	// One worker, so one instance counts every call.
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 1}}, counterDir)
	metrics := prometheus.NewRegistry()
	e.startNode("n1", withMetrics(metrics))

	req := request(protocol.PhaseRequestFilter, "")
	first, firstMsg, err := call(e.nc, "counter", req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := count(t, first)
	if got := header(t, first, "X-Request-Id"); got != req.RequestID.String() {
		t.Errorf("IdempotencyKey() = %q, want the request id %s", got, req.RequestID)
	}
	for range 3 {
		again, msg, err := call(e.nc, "counter", req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if count(t, again) != c || !bytes.Equal(msg.Data, firstMsg.Data) {
			t.Fatalf("redelivery ran the handler again: count %d, want %d", count(t, again), c)
		}
	}
	// The same id in another phase is another request... of a phase this
	// module does not serve; a fresh id runs.
	fresh, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if count(t, fresh) != c+1 {
		t.Fatalf("fresh request count = %d, want %d", count(t, fresh), c+1)
	}

	// Duplicates arriving while the first delivery runs wait for its reply.
	slow := request(protocol.PhaseRequestFilter, "sleep=300ms")
	const dups = 5
	replies := make([][]byte, dups)
	var wg sync.WaitGroup
	for i := range dups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, msg, err := call(e.nc, "counter", slow, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			replies[i] = msg.Data
		}()
	}
	wg.Wait()
	for i := 1; i < dups; i++ {
		if !bytes.Equal(replies[i], replies[0]) {
			t.Fatalf("concurrent duplicates got different replies")
		}
	}
	after, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if count(t, after) != c+3 {
		t.Fatalf("count after %d concurrent duplicates = %d, want %d (the handler ran once)", dups, count(t, after), c+3)
	}
	hits := testutil.MetricSum(t, metrics, "nylon_function_dedup_hits_total", map[string]string{"function": "counter"})
	if hits != 3+dups-1 {
		t.Errorf("dedup hits = %v, want %d", hits, 3+dups-1)
	}
	execs := testutil.MetricSum(t, metrics, "nylon_function_executions_total", map[string]string{"function": "counter", "outcome": "end"})
	if execs != 4 {
		t.Errorf("executions = %v, want 4", execs)
	}

	// A handler's Error reply is remembered too.
	failing := request(protocol.PhaseRequestFilter, "fail=boom")
	for range 2 {
		resp, _, err := call(e.nc, "counter", failing, 5*time.Second)
		if err != nil || resp.Action != protocol.ActionError || resp.Error != "boom" {
			t.Fatalf("fail=boom: %v %+v", err, resp)
		}
	}
	if n := testutil.MetricSum(t, metrics, "nylon_function_executions_total", map[string]string{"function": "counter", "outcome": "error"}); n != 1 {
		t.Errorf("error executions = %v, want 1", n)
	}
}

// Deduplication is by session, phase and request id, as the wire contract
// says: a request of another session carrying the same id runs on its own
// and gets a reply echoing its own session, not the first session's reply.
func TestDedupKeepsSessionsApart(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 1}}, counterDir)
	e.startNode("n1")
	a := request(protocol.PhaseRequestFilter, "")
	a.SessionID = 1
	b := request(protocol.PhaseRequestFilter, "fail=session-2")
	b.RequestID, b.SessionID = a.RequestID, 2

	first, _, err := call(e.nc, "counter", a, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := call(e.nc, "counter", b, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if other.SessionID != 2 || other.Action != protocol.ActionError || other.Error != "session-2" {
		t.Fatalf("session 2 with session 1's request id: session %d action %v error %q, want its own run (session 2, Error session-2)",
			other.SessionID, other.Action, other.Error)
	}
	// Each session's retry still gets its own remembered reply.
	again, _, err := call(e.nc, "counter", a, 5*time.Second)
	if err != nil || again.SessionID != 1 || count(t, again) != count(t, first) {
		t.Fatalf("retry of session 1: %v %+v, want the remembered reply", err, again)
	}
}

// One request id published over and over while its first delivery runs
// does not queue a waiter per message: beyond the bound the duplicates get
// an immediate 503, the rest the first delivery's reply.
func TestDuplicateFloodIsBounded(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 1}}, counterDir)
	metrics := prometheus.NewRegistry()
	e.startNode("n1", withMetrics(metrics))
	const waiting, extra = platform.MaxDedupWaiters, 6

	sub, err := e.nc.SubscribeSync("flood.>")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	req := request(protocol.PhaseRequestFilter, "sleep=500ms")
	msg := &nats.Msg{Subject: "nylon.dev.counter.request_filter", Data: req.AppendMsgpack(nil)}
	// One connection: the server delivers its messages in order, so the
	// first is the one that runs and the others arrive while it sleeps.
	for i := range 1 + waiting + extra {
		msg.Reply = fmt.Sprintf("flood.%d", i)
		if err := e.nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
	}
	refused, answered := 0, map[string]int{}
	for range 1 + waiting + extra {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d refusals and %d replies: %v", refused, len(answered), err)
		}
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			if code != "503" || !strings.Contains(m.Header.Get(micro.ErrorHeader), "duplicates waiting") {
				t.Errorf("%s: micro error %s %q", m.Subject, code, m.Header.Get(micro.ErrorHeader))
			}
			refused++
			continue
		}
		answered[string(m.Data)]++
	}
	if refused != extra || len(answered) != 1 {
		t.Fatalf("%d refused, %d distinct replies, want %d refused and one reply shared by the rest", refused, len(answered), extra)
	}
	if got := testutil.MetricSum(t, metrics, "nylon_function_rejected_total", map[string]string{"function": "counter", "code": "503"}); got != extra {
		t.Errorf("rejected_total{code=503} = %v, want %d", got, extra)
	}
}

func TestDedupDisabled(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 1}}, counterDir)
	e.startNode("n1", withConfig(func(c *platform.Config) { c.DedupWindow = -1 }))
	req := request(protocol.PhaseRequestFilter, "")
	a, _, err := call(e.nc, "counter", req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := call(e.nc, "counter", req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if count(t, b) != count(t, a)+1 {
		t.Fatalf("with deduplication off the handler must run each time: %d then %d", count(t, a), count(t, b))
	}
}

func TestOverloadAnswers503Quickly(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "slow", Config: map[string]string{"sleep": "300ms"}, Limits: registry.Limits{MaxWorkers: 1}}, counterDir)
	metrics := prometheus.NewRegistry()
	e.startNode("n1", withMetrics(metrics), withConfig(func(c *platform.Config) { c.QueueLength = 2 }))

	const flood = 20
	type result struct {
		ok      bool
		code    int
		latency time.Duration
		req     protocol.PluginRequest
	}
	results := make([]result, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := request(protocol.PhaseRequestFilter, "")
			start := time.Now()
			resp, _, err := call(e.nc, "slow", req, 10*time.Second)
			r := result{latency: time.Since(start), req: req}
			var se *serviceError
			switch {
			case err == nil && resp.Action == protocol.ActionEnd:
				r.ok = true
			case asServiceError(err, &se):
				r.code = se.Code
			default:
				t.Errorf("request %d: %v %+v", i, err, resp)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	ok, over := 0, 0
	var refused protocol.PluginRequest
	for _, r := range results {
		switch {
		case r.ok:
			ok++
		case r.code == 503:
			over++
			refused = r.req
			// Refused at admission, not after waiting for a worker.
			if r.latency > 250*time.Millisecond {
				t.Errorf("503 after %v: want an immediate refusal", r.latency)
			}
		default:
			t.Errorf("unexpected result %+v", r)
		}
	}
	// One running and two queued at most at any time; the burst is far
	// faster than one 300ms call, so most are refused.
	if ok < 1 || over < flood/2 || ok+over != flood {
		t.Fatalf("ok %d, overloaded %d of %d", ok, over, flood)
	}
	if got := testutil.MetricSum(t, metrics, "nylon_function_overloaded_total", map[string]string{"function": "slow"}); got != float64(over) {
		t.Errorf("overloaded_total = %v, want %d", got, over)
	}
	// A refusal is not remembered: the retry runs.
	resp, _, err := call(e.nc, "slow", refused, 5*time.Second)
	if err != nil || resp.Action != protocol.ActionEnd {
		t.Fatalf("retry of a refused request: %v %+v", err, resp)
	}
}

func asServiceError(err error, se **serviceError) bool {
	e, ok := err.(*serviceError)
	if ok {
		*se = e
	}
	return ok
}

func TestMicroStatsCountRequestsAndErrors(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter"}, counterDir)
	e.startNode("n1")

	for _, q := range []string{"", "", "sleep=100ms", "fail=boom", "fail=bang"} {
		if _, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, q), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.nc.Request("nylon.dev.counter.request_filter", []byte{0xc1}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st := serviceStats(t, e.nc, "counter", 1)[0]
	if len(st.Endpoints) != 1 {
		t.Fatalf("endpoints = %+v", st.Endpoints)
	}
	ep := st.Endpoints[0]
	if ep.NumRequests != 6 || ep.NumErrors != 3 {
		t.Errorf("num_requests %d num_errors %d, want 6 and 3 (two handler errors, one 400)", ep.NumRequests, ep.NumErrors)
	}
	// Processing time is measured from receipt to reply, so the 100ms call
	// shows in it even though a worker ran it.
	if ep.ProcessingTime < 100*time.Millisecond || ep.AverageProcessingTime != ep.ProcessingTime/6 {
		t.Errorf("processing_time %v average %v", ep.ProcessingTime, ep.AverageProcessingTime)
	}
	if !strings.HasPrefix(ep.LastError, "400:") {
		t.Errorf("last_error = %q, want the 400", ep.LastError)
	}
	var data map[string]int
	if err := json.Unmarshal(ep.Data, &data); err != nil || data["handler_errors"] != 2 {
		t.Errorf("data = %s (%v), want handler_errors 2", ep.Data, err)
	}
	if st.Type != "io.nats.micro.v1.stats_response" || st.Started.IsZero() {
		t.Errorf("stats header = %+v", st.ServiceIdentity)
	}
}

func TestTrapsAndTimeouts(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{TimeoutMS: 200, MaxWorkers: 1}}, counterDir)
	metrics := prometheus.NewRegistry()
	e.startNode("n1", withMetrics(metrics))

	resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, "exit=3"), 5*time.Second)
	if err != nil || resp.Action != protocol.ActionError || !strings.Contains(resp.Error, "trap") {
		t.Fatalf("exit=3: %v %+v, want action Error with the trap", err, resp)
	}
	start := time.Now()
	resp, _, err = call(e.nc, "counter", request(protocol.PhaseRequestFilter, "spin=10s"), 5*time.Second)
	if err != nil || resp.Action != protocol.ActionError || !strings.Contains(resp.Error, "timeout") {
		t.Fatalf("spin=10s: %v %+v, want action Error with the timeout", err, resp)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the timed-out call answered after %v, want about 200ms", d)
	}
	// The trapped and timed-out instances were replaced: the next call works.
	resp, _, err = call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second)
	if err != nil || resp.Action != protocol.ActionEnd {
		t.Fatalf("after trap and timeout: %v %+v", err, resp)
	}
	fn := map[string]string{"function": "counter", "phase": "request_filter"}
	for name, want := range map[string]float64{
		"nylon_function_traps_total":      1,
		"nylon_function_timeouts_total":   1,
		"nylon_function_errors_total":     2,
		"nylon_function_duration_seconds": 3,
	} {
		if got := testutil.MetricSum(t, metrics, name, fn); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	st := serviceStats(t, e.nc, "counter", 1)[0].Endpoints[0]
	var data map[string]int
	_ = json.Unmarshal(st.Data, &data)
	if st.NumErrors != 2 || data["traps"] != 1 || data["timeouts"] != 1 {
		t.Errorf("stats errors %d data %s", st.NumErrors, st.Data)
	}
}

// Calls run on the version's workers, not on the subscription goroutine
// that admits them, so a long call neither holds up a short one behind it
// nor keeps max_workers calls from running side by side.
func TestLongCallDoesNotHoldUpOthers(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 3}}, counterDir)
	e.startNode("n1")

	type result struct {
		latency time.Duration
		err     error
	}
	start := func(query string) chan result {
		out := make(chan result, 1)
		go func() {
			t0 := time.Now()
			resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, query), 10*time.Second)
			if err == nil && resp.Action != protocol.ActionEnd {
				err = fmt.Errorf("action %v, want End", resp.Action)
			}
			out <- result{time.Since(t0), err}
		}()
		return out
	}

	// Two slow calls and, once they run, a fast one.
	slow1, slow2 := start("sleep=600ms"), start("sleep=600ms")
	time.Sleep(50 * time.Millisecond)
	fast := <-start("")
	if fast.err != nil {
		t.Fatal(fast.err)
	}
	if fast.latency > 300*time.Millisecond {
		t.Errorf("short call answered after %v behind two 600ms calls, want well under their duration", fast.latency)
	}
	for _, ch := range []chan result{slow1, slow2} {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		// Side by side: each is done in about 600ms, not one after the other.
		if r.latency > 1100*time.Millisecond {
			t.Errorf("slow call took %v: the two did not run side by side", r.latency)
		}
	}
}
