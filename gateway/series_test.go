package gateway_test

import (
	"testing"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// seriesWith counts the series of a registry with label name = value.
var seriesWith = gateway.SeriesWith

// The series of a function route go with the route: a gateway that runs
// for weeks through deploys and deletes of short-lived functions would
// otherwise keep every one it ever served. Those the configuration holds
// (a plugin named as a function, a configured route) stay.
func TestRemovedFunctionRoutesLeaveNoSeries(t *testing.T) {
	e := newEnv(t)
	e.serve("tmp", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("tmp")) })
	e.serve("auth", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("auth")) })
	up := e.upstream()
	gw, srv := e.gateway(yamlMessaging(`plugins:
  - name: auth
    messaging: nats
    per_phase: {request_filter: {}}
routes:
  - {path: /api, upstream: "` + up.URL + `", plugins: [auth]}
`))
	err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/tmp", Function: "tmp"},
		{Path: "/tmp/{x}", Function: "tmp"},
		{Path: "/auth-fn", Function: "auth"}, // named as the configured plugin
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/tmp", "/tmp/a", "/auth-fn", "/api"} {
		wantStatus(t, get(t, srv.URL+p), 200)
	}
	want := func(label, value string, present bool) {
		t.Helper()
		if n := seriesWith(t, e.reg, label, value); (n > 0) != present {
			t.Errorf("%d series with %s=%q, want them present: %v", n, label, value, present)
		}
	}
	for _, v := range []string{"/tmp", "/tmp/{x}", "/auth-fn", "/api"} {
		want("route", v, true)
	}
	want("plugin", "tmp", true)
	want("plugin", "auth", true)

	// tmp keeps one route; auth's function route goes.
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/tmp/{x}", Function: "tmp"}}); err != nil {
		t.Fatal(err)
	}
	want("route", "/tmp", false)
	want("route", "/auth-fn", false)
	want("route", "/tmp/{x}", true)
	want("plugin", "tmp", true)
	want("plugin", "auth", true) // the configured plugin's
	want("route", "/api", true)

	if err := gw.SetFunctionRoutes(nil); err != nil {
		t.Fatal(err)
	}
	want("route", "/tmp/{x}", false)
	want("plugin", "tmp", false)
	want("plugin", "auth", true)
	want("route", "/api", true)

	// The configured route and plugin still count.
	wantStatus(t, get(t, srv.URL+"/api"), 200)
	if n := testCounter(t, e.reg, "nylon_http_requests_total", "route", "/api"); n != 2 {
		t.Errorf("nylon_http_requests_total{route=\"/api\"} = %v, want 2", n)
	}
}

// testCounter sums the counters called name with label = value.
func testCounter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
