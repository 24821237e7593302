package gateway

import (
	"testing"
	"time"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// A call still running on a removed route may count after its series were
// dropped (a first-node wait that ends in 503, a dead letter lost): the
// series it makes are dropped again at the first change seriesGrace after
// the removal, and a name that came back keeps its series.
func TestRemovedRouteSeriesDroppedAgainAfterGrace(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	count := func(label, value string) int { return seriesWith(t, reg, label, value) }
	set := func(names ...string) seriesLabels {
		s := seriesLabels{plugins: map[string]struct{}{}, routes: map[string]struct{}{}}
		for _, n := range names {
			s.plugins[n] = struct{}{}
			s.routes["/"+n] = struct{}{}
		}
		return s
	}
	use := func(name string) {
		m.forPhase("nats", name, protocol.PhaseRequestFilter).retries.Add(0)
		m.httpRequests.WithLabelValues("/"+name, "200").Inc()
	}
	var fs routeSeries
	t0 := time.Now()
	use("gone")
	use("back")
	m.forgetRemoved(&fs, set("gone", "back"), t0)
	m.forgetRemoved(&fs, set(), t0.Add(time.Second))
	for _, v := range []string{"gone", "back"} {
		if n := count("plugin", v) + count("route", "/"+v); n != 0 {
			t.Fatalf("%d series of %s left after its removal", n, v)
		}
	}

	// A straggler of gone counts; back is deployed again.
	m.errors.WithLabelValues("gone", "request_filter", "NoResponder").Inc()
	m.httpRequests.WithLabelValues("/gone", "503").Inc()
	use("back")
	m.forgetRemoved(&fs, set("back"), t0.Add(2*time.Second))
	if count("plugin", "gone") != 1 || count("route", "/gone") != 1 {
		t.Fatal("the straggler's series went before the grace was over")
	}
	m.forgetRemoved(&fs, set("back"), t0.Add(time.Second+seriesGrace))
	if n := count("plugin", "gone") + count("route", "/gone"); n != 0 {
		t.Errorf("%d series of the straggler left after the grace", n)
	}
	if count("plugin", "back") == 0 || count("route", "/back") == 0 {
		t.Error("the series of a function deployed again were dropped")
	}
	if len(fs.retiredPlugins)+len(fs.retiredRoutes) != 0 {
		t.Errorf("retired after the grace: %v %v", fs.retiredPlugins, fs.retiredRoutes)
	}
}

// seriesWith counts the series of reg with label name = value.
func seriesWith(t testing.TB, reg prometheus.Gatherer, name, value string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == name && l.GetValue() == value {
					n++
				}
			}
		}
	}
	return n
}
