package testutil

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "calls_total"}, []string{"plugin", "kind"})
	idle := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idle_total"}, []string{"plugin"})
	reg.MustRegister(calls, idle)
	calls.WithLabelValues("a", "x").Add(2)
	calls.WithLabelValues("a", "y").Add(3)
	calls.WithLabelValues("b", "x").Add(5)

	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{nil, 10},
		{map[string]string{"plugin": "a"}, 5},
		{map[string]string{"plugin": "a", "kind": "y"}, 3},
		{map[string]string{"plugin": "c"}, 0}, // no such series yet: nothing counted
	} {
		if got := MetricSum(t, reg, "calls_total", c.labels); got != c.want {
			t.Errorf("MetricSum(calls_total, %v) = %v, want %v", c.labels, got, c.want)
		}
	}

	// Each of these would read as 0 if MetricSum did not fail.
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"call_total", nil, "no metric call_total"},
		{"idle_total", nil, "no metric idle_total"}, // a vector without children
		{"calls_total", map[string]string{"plugn": "a"}, `no label "plugn"`},
	} {
		if _, err := GatherSum(reg, c.name, c.labels); !errors.Is(err, ErrNoMetric) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("GatherSum(%s, %v) = %v, want ErrNoMetric mentioning %q", c.name, c.labels, err, c.want)
		}
		ft := &fatalTB{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(fatalStop); !ok {
						panic(r)
					}
				}
			}()
			MetricSum(ft, reg, c.name, c.labels)
		}()
		if !strings.Contains(ft.msg, c.want) {
			t.Errorf("MetricSum(%s, %v) failed with %q, want a failure mentioning %q", c.name, c.labels, ft.msg, c.want)
		}
	}
}
