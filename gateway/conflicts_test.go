package gateway_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/protocol"
)

// conflictGauge returns the series of nylon_gateway_route_conflicts as
// "route function owner" lines.
func conflictGauge(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "nylon_gateway_route_conflicts" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if m.GetGauge().GetValue() == 1 {
				out = append(out, l["route"]+" "+l["function"]+" "+l["owner"])
			}
		}
	}
	return out
}

func logLines(log, substr string) []string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

// Two functions with one route (the same pattern, or one chi cannot tell
// apart, as /a/{x} and /a/{y}): the function whose name sorts first keeps
// it, whatever the patterns' order; the conflict is a WARN naming winner
// and loser, logged once while it lasts, and a gauge series.
func TestFunctionRouteConflicts(t *testing.T) {
	e := newEnv(t)
	for _, fn := range []string{"aaa", "bbb", "hello"} {
		e.serve(fn, protocol.PhaseRequestFilter, func(c *call) answer { return end(body(fn)) })
	}
	gw, srv := e.gateway(yamlMessaging(""))
	routes := []gateway.FunctionRoute{
		{Path: "/hello", Function: "hello"},
		{Path: "/hello", Function: "aaa"},
		{Path: "/a/{x}", Function: "aaa"},
		{Path: "/a/{y}", Function: "bbb"},
		{Path: "/a/{y}", Function: "aaa"}, // its own route twice over: no conflict
	}
	if err := gw.SetFunctionRoutes(routes); err != nil {
		t.Fatalf("SetFunctionRoutes: %v (a conflict is not an error)", err)
	}
	if r := get(t, srv.URL+"/hello"); r.Body != "aaa" {
		t.Fatalf("/hello answered by %q, want aaa (sorts before hello)", r.Body)
	}
	if r := get(t, srv.URL+"/a/1"); r.Body != "aaa" {
		t.Fatalf("/a/1 answered by %q, want aaa (sorts before bbb; /a/{x} and /a/{y} are one route)", r.Body)
	}
	warns := logLines(e.log.String(), "function route conflict")
	want := []string{
		"route=/a/{y} lost=bbb won=aaa won_route=/a/{x}",
		"route=/hello lost=hello won=aaa won_route=/hello",
	}
	if len(warns) != len(want) {
		t.Fatalf("%d conflicts logged, want %d:\n%s", len(warns), len(want), strings.Join(warns, ""))
	}
	for i, w := range want {
		if !strings.Contains(warns[i], "level=WARN") || !strings.Contains(warns[i], w) {
			t.Errorf("conflict log %q, want a WARN with %q", warns[i], w)
		}
	}
	if got, want := strings.Join(conflictGauge(t, e.reg), ", "), "/a/{y} bbb aaa, /hello hello aaa"; got != want {
		t.Errorf("conflict gauge %q, want %q", got, want)
	}

	// The registry changes again (every change installs all routes): the
	// lasting conflicts are not logged again.
	if err := gw.SetFunctionRoutes(routes); err != nil {
		t.Fatal(err)
	}
	if n := len(logLines(e.log.String(), "function route conflict")); n != len(want) {
		t.Fatalf("%d conflict logs after an unchanged update, want still %d", n, len(want))
	}

	// aaa goes away: the others get their routes back, the gauge empties.
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{routes[0], routes[3]}); err != nil {
		t.Fatal(err)
	}
	if r := get(t, srv.URL+"/hello"); r.Body != "hello" {
		t.Fatalf("/hello answered by %q after aaa left, want hello", r.Body)
	}
	if r := get(t, srv.URL+"/a/1"); r.Body != "bbb" {
		t.Fatalf("/a/1 answered by %q after aaa left, want bbb", r.Body)
	}
	if g := conflictGauge(t, e.reg); len(g) != 0 {
		t.Errorf("conflict gauge %q after the conflicts ended, want none", g)
	}
}

// A configured route wins over a function route chi cannot tell apart from
// it, not only over the identical pattern.
func TestConfiguredRouteWinsOverEquivalentFunctionRoute(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("fn", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("fn")) })
	gw, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: "/s/{id}", upstream: "` + up.URL + `"}
`)
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/s/{name}", Function: "fn"}}); err != nil {
		t.Fatal(err)
	}
	if r := get(t, srv.URL+"/s/1"); r.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("/s/1 answered %d %q, want the configured upstream", r.Status, r.Body)
	}
	warns := logLines(e.log.String(), "configured route wins")
	if len(warns) != 1 || !strings.Contains(warns[0], "level=WARN") || !strings.Contains(warns[0], "route=/s/{name} lost=fn") ||
		!strings.Contains(warns[0], "won_route=/s/{id}") {
		t.Fatalf("conflict logs %q, want one WARN naming the function and the configured route", warns)
	}
	if got := conflictGauge(t, e.reg); len(got) != 1 || got[0] != "/s/{name} fn configured route" {
		t.Fatalf("conflict gauge %q", got)
	}
}
