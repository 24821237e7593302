package platform_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// A guest that traps on every request logs a bounded number of WARN lines
// (10 a second for the subject) and summaries whose suppressed counts add
// up to the rest, the last within a few seconds; the metrics count every
// trap. Before, every trap was a WARN line.
func TestTrapStormIsSampled(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 4}}, counterDir)
	metrics := prometheus.NewRegistry()
	var logs testutil.SyncBuffer
	e.startNode("n1", withMetrics(metrics), withConfig(func(c *platform.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}))

	const total = 300
	start := time.Now()
	parallel(total, 8, func(int) {
		resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, "exit=3"), 10*time.Second)
		if err != nil || resp.Action != protocol.ActionError {
			t.Errorf("exit=3: %v %+v, want action Error", err, resp)
		}
	})
	burst := time.Since(start)

	testutil.WaitSampled(t, "handler trapped", total, burst, func() testutil.SampledLines {
		return testutil.SampledJSON(t, logs.Bytes(), "platform: handler trapped", "WARN", "nylon.dev.counter.request_filter")
	})
	if got := testutil.MetricSum(t, metrics, "nylon_function_traps_total", map[string]string{"function": "counter"}); got != total {
		t.Errorf("traps_total = %v, want every trap (%d)", got, total)
	}
}
