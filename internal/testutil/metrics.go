package testutil

import (
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrNoMetric is wrapped by GatherSum's error for a metric family that is
// not gathered, or that has no label of a name asked for.
var ErrNoMetric = errors.New("no such metric")

// MetricSum sums the samples of the metric family name in g whose labels
// include every pair of labels: counter and gauge values, a histogram's
// sample count. It is 0 when the family has no series with those labels.
//
// It fails the test when g gathers no family called name, or when the
// family has no label called one of the keys of labels: a renamed metric or
// label would otherwise read as 0 and pass every assertion of 0. A vector
// appears in Gather only once it has a child, so asserting that nothing was
// counted needs a child to exist (the code under test creates it up front,
// or the test counts something under other labels first). To wait for a
// metric that appears later, poll GatherSum.
func MetricSum(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	sum, err := GatherSum(g, name, labels)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return sum
}

// GatherSum is MetricSum returning its failures, for polling with
// Eventually: a vector gets its first child when the code under test first
// counts, so its family may not exist yet.
func GatherSum(g prometheus.Gatherer, name string, labels map[string]string) (float64, error) {
	families, err := g.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather metrics: %w", err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		// Every series of a family has the same label names.
		known := map[string]bool{}
		if ms := mf.GetMetric(); len(ms) > 0 {
			for _, lp := range ms[0].GetLabel() {
				known[lp.GetName()] = true
			}
		}
		for k := range labels {
			if !known[k] {
				return 0, fmt.Errorf("%w: metric %s has no label %q", ErrNoMetric, name, k)
			}
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			have := make(map[string]string, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			if !hasLabels(have, labels) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return sum, nil
	}
	return 0, fmt.Errorf("%w: no metric %s gathered (renamed, not registered, or a vector with no child yet)", ErrNoMetric, name)
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
