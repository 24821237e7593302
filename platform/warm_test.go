package platform_test

import (
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// A function new to the node starts with one instance, whatever the CPUs:
// a node serves many functions, most of them seldom called, and each warmed
// instance of a Go guest costs milliseconds to start and MiBs to keep. A new
// version of a busy function starts with the instances the old one had, so
// its traffic does not wait for instances after the swap.
func TestWarmsOneInstanceForANewFunctionAndTheOldCountOnReload(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		// Warming is capped at one instance per CPU: with one, a node
		// always warmed one, and the test could not tell the fix apart.
		prev := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	e := newEnv(t)
	spec := registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 4}}
	e.deploy(spec, counterDir)
	metrics := prometheus.NewRegistry()
	e.startNode("n1", withMetrics(metrics))
	instances := func() float64 {
		return testutil.MetricSum(t, metrics, "nylon_function_pool_instances", map[string]string{"function": "counter"})
	}
	if got := instances(); got != 1 {
		t.Fatalf("instances of a new function = %v, want 1", got)
	}

	// Two calls at once need two instances.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, "sleep=300ms"), 10*time.Second); err != nil {
				t.Errorf("call: %v", err)
			}
		}()
	}
	wg.Wait()
	if got := instances(); got != 2 {
		t.Fatalf("instances after two concurrent calls = %v, want 2", got)
	}

	spec.Config = map[string]string{"label": "v2"}
	rec := e.deploy(spec, counterDir)
	waitVersion(t, e.nc, "counter", 1, "1.0."+strconv.FormatUint(rec.Version, 10))
	if got := instances(); got != 2 {
		t.Fatalf("instances of the new version = %v, want the 2 the old one had", got)
	}
}
