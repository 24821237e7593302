package platform_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// A request whose caller stopped waiting (Nylon-Timeout-Ms) before a worker
// was free is answered 504 and not run; one whose caller still waits runs,
// and so does a deduplicated request whose first caller gave up while a
// retry that joined it still waits.
func TestExpiredRequestsAreNotRun(t *testing.T) {
	e := newEnv(t)
	// The timeout is well above the blocker's sleep, which must not time
	// out even under -race on a busy machine.
	e.deploy(registry.Spec{Name: "slow", Limits: registry.Limits{MaxWorkers: 1, TimeoutMS: 10000}}, counterDir)
	metrics := prometheus.NewRegistry()
	e.startNode("n1", withMetrics(metrics), withConfig(func(c *platform.Config) { c.QueueLength = 16 }))
	labels := map[string]string{"function": "slow"}
	waitInflight := func(n float64) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
			got, err := testutil.GatherSum(metrics, "nylon_function_inflight", labels)
			if err == nil && got != n {
				err = fmt.Errorf("inflight %v, want %v", got, n)
			}
			return err
		})
	}
	timeout := func(ms string) nats.Header { return nats.Header{protocol.HeaderTimeout: {ms}} }

	type result struct {
		resp *protocol.PluginResponse
		err  error
	}
	var wg sync.WaitGroup
	send := func(req protocol.PluginRequest, hdr nats.Header) *result {
		r := new(result)
		wg.Go(func() { r.resp, _, r.err = callWith(e.nc, "slow", req, hdr, 10*time.Second) })
		return r
	}

	// The only worker sleeps for a second; everything below queues behind it.
	blocker := send(request(protocol.PhaseRequestFilter, "sleep=1s"), nil)
	waitInflight(1)
	var short []*result
	for range 3 {
		short = append(short, send(request(protocol.PhaseRequestFilter, ""), timeout("100")))
	}
	long := send(request(protocol.PhaseRequestFilter, ""), timeout("10000"))
	first := request(protocol.PhaseRequestFilter, "")
	gaveUp := send(first, timeout("100"))
	waitInflight(6)
	retry := send(first, timeout("10000")) // same request id: joins the queued first
	wg.Wait()

	for _, r := range []*result{blocker, long, gaveUp, retry} {
		if r.err != nil || r.resp.Action != protocol.ActionEnd {
			t.Errorf("a request whose caller still waited: %v %+v; want End", r.err, r.resp)
		}
	}
	if gaveUp.err == nil && retry.err == nil && header(t, gaveUp.resp, "X-Count") != header(t, retry.resp, "X-Count") {
		t.Errorf("the retry ran again (X-Count %s and %s): want one run answering both",
			header(t, gaveUp.resp, "X-Count"), header(t, retry.resp, "X-Count"))
	}
	for i, r := range short {
		var se *serviceError
		if !errors.As(r.err, &se) || se.Code != protocol.ServiceErrTimeout || !strings.Contains(se.Desc, "expired") || !strings.Contains(se.Desc, protocol.HeaderTimeout) {
			t.Errorf("expired request %d: %v %+v; want micro error 504 saying it expired", i, r.err, r.resp)
		}
	}
	if got := testutil.MetricSum(t, metrics, "nylon_function_executions_total", labels); got != 3 {
		t.Errorf("executions_total = %v, want 3 (the blocker, the long wait, the first+retry pair)", got)
	}
	if got := testutil.MetricSum(t, metrics, "nylon_function_rejected_total", map[string]string{"function": "slow", "code": "504"}); got != 3 {
		t.Errorf("rejected_total{code=504} = %v, want 3", got)
	}

	// An expired request is not remembered: its retry runs.
	again, _, err := callWith(e.nc, "slow", request(protocol.PhaseRequestFilter, ""), timeout("10000"), 10*time.Second)
	if err != nil || again.Action != protocol.ActionEnd {
		t.Fatalf("a request after the queue drained: %v %+v", err, again)
	}
}

// A Nylon-Timeout-Ms that is not a millisecount count is refused as a
// decode error naming the header, and the node goes on serving; the
// header's name is matched whatever its case.
func TestTimeoutHeaderIsChecked(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter"}, counterDir)
	e.startNode("n1")
	for _, v := range []string{"abc", "0", "-1", "1.5", "99999999999"} {
		_, _, err := callWith(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), nats.Header{protocol.HeaderTimeout: {v}}, 5*time.Second)
		var se *serviceError
		if !errors.As(err, &se) || se.Code != protocol.ServiceErrDecode || !strings.Contains(se.Desc, protocol.HeaderTimeout) {
			t.Errorf("Nylon-Timeout-Ms %q: %v; want micro error 400 naming the header", v, err)
		}
	}
	if _, _, err := callWith(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), nats.Header{"nylon-timeout-ms": {"x"}}, 5*time.Second); err == nil {
		t.Errorf("nylon-timeout-ms x (lower case): answered; want the same refusal")
	}
	resp, _, err := callWith(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), nats.Header{protocol.HeaderTimeout: {"2000"}}, 5*time.Second)
	if err != nil || resp.Action != protocol.ActionEnd {
		t.Fatalf("a valid Nylon-Timeout-Ms: %v %+v", err, resp)
	}
}
