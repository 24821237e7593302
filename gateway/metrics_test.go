package gateway

import (
	"maps"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestStatusCountersCountEveryCode(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total"}, []string{"route", "code"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(vec)
	s := newStatusCounters(vec.MustCurryWith(prometheus.Labels{"route": "/hello"}))
	codes := []int{200, 404, 499, 200, 503, 200}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				for _, c := range codes {
					s.inc(c)
				}
			}
		})
	}
	wg.Wait()
	want := map[string]float64{"200": 2400, "404": 800, "499": 800, "503": 800}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("counts by code %v, want %v", got, want)
	}
	if got := len(*s.list.Load()); got != len(want) {
		t.Errorf("%d cached children, want %d (one per code)", got, len(want))
	}
}
