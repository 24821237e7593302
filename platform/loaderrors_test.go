package platform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// loadErrorSeries returns nylon_function_load_errors_total of function and
// whether the series exists at all: an alert on increase() sees the first
// failure only if the series was there, at 0, before it.
func loadErrorSeries(t *testing.T, g prometheus.Gatherer, function string) (float64, bool) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "nylon_function_load_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "function" && lp.GetValue() == function {
					return m.GetCounter().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// The load-error counter of a function starts at 0 once the node loads it,
// like the other nylon_function_* counters, counts a failed load from there,
// and goes with the function's other series when it is deleted.
func TestLoadErrorCounterStartsAtZeroAndGoesWithTheFunction(t *testing.T) {
	e := newEnv(t)
	counter := e.deploy(registry.Spec{Name: "counter"}, counterDir)
	other := e.deploy(registry.Spec{Name: "other"}, helloDir)
	metrics := prometheus.NewRegistry()
	n := e.startNode("n1", withMetrics(metrics))
	waitServing(t, n, "counter", counter.Version)
	waitServing(t, n, "other", other.Version)

	if v, ok := loadErrorSeries(t, metrics, "counter"); !ok || v != 0 {
		t.Fatalf("load errors of counter before any failure: %v (series exists: %v), want a series at 0", v, ok)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.reg.Deploy(ctx, registry.Spec{Name: "counter", Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter)},
		[]byte("this is not a wasm module")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		if v, ok := loadErrorSeries(t, metrics, "counter"); !ok || v != 1 {
			return fmt.Errorf("load errors of counter after a bad version: %v (series exists: %v), want 1", v, ok)
		}
		return nil
	})

	if err := e.reg.Delete(ctx, "counter"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		if h := n.Health(); len(h.Functions) != 1 || h.Functions[0].Name != "other" {
			return fmt.Errorf("functions after delete = %+v", h.Functions)
		}
		if v, ok := loadErrorSeries(t, metrics, "counter"); ok {
			return fmt.Errorf("load errors of the deleted counter still exported: %v", v)
		}
		return nil
	})
	if v, ok := loadErrorSeries(t, metrics, "other"); !ok || v != 0 {
		t.Errorf("load errors of other: %v (series exists: %v), want it untouched at 0", v, ok)
	}

	// Deployed again, it starts from 0 again.
	rec := e.deploy(registry.Spec{Name: "counter"}, counterDir)
	waitServing(t, n, "counter", rec.Version)
	if v, ok := loadErrorSeries(t, metrics, "counter"); !ok || v != 0 {
		t.Errorf("load errors of counter deployed again: %v (series exists: %v), want a series at 0", v, ok)
	}
}
