package gateway_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

func parse(t *testing.T, yaml string) gateway.Config {
	t.Helper()
	cfg, err := gateway.ParseConfig("reload.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return *cfg
}

func reload(t *testing.T, gw *gateway.Gateway, yaml string) {
	t.Helper()
	if err := gw.Reload(context.Background(), parse(t, yaml)); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

func reloadMetrics(t *testing.T, e *env) (success, failure, last float64) {
	t.Helper()
	return testutil.MetricSum(t, e.reg, "nylon_gateway_config_reloads_total", map[string]string{"result": "success"}),
		testutil.MetricSum(t, e.reg, "nylon_gateway_config_reloads_total", map[string]string{"result": "failure"}),
		testutil.MetricSum(t, e.reg, "nylon_gateway_config_last_reload_successful", nil)
}

// A reload adds and removes configured routes and changes a plugin's
// policies for the next request, while a request in flight across it
// finishes with the policy it started with, and the registry's function
// routes stay.
func TestReloadSwapsRoutesAndPolicies(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	var delay atomic.Int64
	gate := e.serve("gate", protocol.PhaseRequestFilter, func(c *call) answer {
		time.Sleep(time.Duration(delay.Load()))
		return next()
	})
	e.serve("fn", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("fn")) })
	config := func(policy, routes string) string {
		return yamlMessaging("") + `
plugins:
  - {name: gate, messaging: nats, per_phase: {request_filter: {` + policy + `}}}
routes:
  - {path: /gated, upstream: "` + up.URL + `", plugins: [gate]}
` + routes
	}
	gw, srv := e.gateway(config("timeout_ms: 2000", `  - {path: /old, upstream: "`+up.URL+`"}`))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/fn", Function: "fn"}}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, get(t, srv.URL+"/old"), 200)
	wantStatus(t, get(t, srv.URL+"/new"), 404)

	// In flight across the reload: the plugin answers after 300 ms, within
	// the 2 s it started with, not the 100 ms of the new config.
	delay.Store(int64(300 * time.Millisecond))
	inflight := make(chan result, 1)
	go func() { inflight <- get(t, srv.URL+"/gated") }()
	eventually(t, wantCount(gate, 1))
	reload(t, gw, config("timeout_ms: 100", `  - {path: /new, upstream: "`+up.URL+`"}`))
	if r := <-inflight; r.Status != 200 {
		t.Fatalf("request in flight across the reload: status %d, want 200 (body %q)", r.Status, r.Body)
	}

	// At once after Reload returns: the table was swapped before.
	wantStatus(t, get(t, srv.URL+"/new"), 200)
	wantStatus(t, get(t, srv.URL+"/old"), 404)
	if n := seriesWith(t, e.reg, "route", "/old"); n != 0 {
		t.Errorf("%d series of the removed route /old left after the reload", n)
	}
	if r := get(t, srv.URL+"/fn"); r.Status != 200 || r.Body != "fn" {
		t.Fatalf("function route after the reload: %d %q, want 200 fn", r.Status, r.Body)
	}
	r := get(t, srv.URL+"/gated")
	wantStatus(t, r, 504) // the new timeout, on_error end
	if p := r.problem(t); p.Type != gateway.ProblemTimeout {
		t.Fatalf("problem %+v", p)
	}

	// on_error continue: the plugin that times out is skipped.
	reload(t, gw, config("timeout_ms: 100, on_error: continue", ""))
	hits := up.hits.Load()
	wantStatus(t, get(t, srv.URL+"/gated"), 200)
	if up.hits.Load() != hits+1 {
		t.Fatal("upstream not reached past the skipped plugin")
	}
	wantStatus(t, get(t, srv.URL+"/new"), 404)
	if !strings.Contains(e.log.String(), `msg="gateway: configuration reloaded" routes=1 plugins=1 routes_added=[] routes_removed=[/new]`) {
		t.Errorf("no reload log with the routes removed in:\n%s", e.log.String())
	}

	// A plugin and route the configuration drops take their series along,
	// as a deleted function's do.
	if seriesWith(t, e.reg, "plugin", "gate") == 0 || seriesWith(t, e.reg, "route", "/gated") == 0 {
		t.Fatal("no series of plugin gate or route /gated to begin with")
	}
	reload(t, gw, yamlMessaging(""))
	if n := seriesWith(t, e.reg, "plugin", "gate") + seriesWith(t, e.reg, "route", "/gated"); n != 0 {
		t.Errorf("%d series of the removed plugin gate and route /gated left after the reload", n)
	}
	if seriesWith(t, e.reg, "plugin", "fn") == 0 {
		t.Error("the function route's series went with a reload that kept it")
	}

	if s, f, last := reloadMetrics(t, e); s != 3 || f != 0 || last != 1 {
		t.Fatalf("reloads success %v failure %v, last successful %v; want 3, 0, 1", s, f, last)
	}
}

// An invalid configuration, or one changing what needs a restart, is
// refused whole: the routes and policies before it keep serving, and the
// error names the field.
func TestReloadRefusesAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	good := func(route string) string {
		return yamlMessaging("") + `
routes:
  - {path: /old, upstream: "` + up.URL + `"}
  - {path: "` + route + `", upstream: "` + up.URL + `"}
`
	}
	gw, srv := e.gateway(good("/kept"))

	refused := []struct {
		name string
		cfg  gateway.Config
		want string
		is   error
	}{
		{"bad reference", func() gateway.Config {
			c := parse(t, good("/new"))
			c.Routes[1].Plugins = []string{"ghost"}
			return c
		}(), `routes[1].plugins[0]: "ghost" is not a plugin`, gateway.ErrInvalidConfig},
		{"bad value", func() gateway.Config {
			c := parse(t, good("/new"))
			c.Messaging[0].RequestTimeoutMs = -1
			return c
		}(), "messaging[0].request_timeout_ms: -1 is negative", gateway.ErrInvalidConfig},
		{"route conflict", func() gateway.Config {
			c := parse(t, good("/new/{a}"))
			c.Routes = append(c.Routes, gateway.RouteConfig{Path: "/new/{b}", Upstream: up.URL})
			return c
		}(), "routes[2].path: * /new/{b} is already routed by routes[1]", gateway.ErrInvalidConfig},
		{"subject prefix", func() gateway.Config {
			c := parse(t, good("/new"))
			c.Messaging[0].SubjectPrefix = "nylon.other"
			return c
		}(), `messaging[0].subject_prefix: changed from "nylon.dev" to "nylon.other"`, gateway.ErrRestartRequired},
		{"servers", func() gateway.Config {
			c := parse(t, good("/new"))
			c.Messaging[0].Servers = []string{"nats://127.0.0.1:4999"}
			return c
		}(), "messaging[0].servers: changed", gateway.ErrRestartRequired},
		{"dlq", func() gateway.Config {
			c := parse(t, good("/new"))
			c.Messaging[0].DLQ.MaxMsgs = 5
			return c
		}(), "messaging[0].dlq: changed", gateway.ErrRestartRequired},
		{"messaging added", func() gateway.Config {
			c := parse(t, good("/new"))
			c.Messaging = append(c.Messaging, gateway.MessagingConfig{Name: "second"})
			return c
		}(), "messaging: configs [nats second], were [nats]", gateway.ErrRestartRequired},
	}
	for i, tt := range refused {
		err := gw.Reload(context.Background(), tt.cfg)
		if err == nil || !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("%s: reload error %v, want %q wrapping %v", tt.name, err, tt.want, tt.is)
		}
		if strings.Contains(err.Error(), "needs a restart") != (tt.is == gateway.ErrRestartRequired) {
			t.Errorf("%s: error %q: says needs a restart wrongly", tt.name, err)
		}
		wantStatus(t, get(t, srv.URL+"/kept"), 200)
		wantStatus(t, get(t, srv.URL+"/old"), 200)
		wantStatus(t, get(t, srv.URL+"/new"), 404)
		if s, f, last := reloadMetrics(t, e); s != 0 || f != float64(i+1) || last != 0 {
			t.Fatalf("%s: reloads success %v failure %v, last successful %v; want 0, %d, 0", tt.name, s, f, last, i+1)
		}
	}

	// A file that does not load: the error names its line, and counts.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(good("/new")+"  - {path: /x, upstreem: \"http://x\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := gw.ReloadFile(context.Background(), bad)
	if err == nil || !errors.Is(err, gateway.ErrInvalidConfig) || !strings.Contains(err.Error(), bad+`:10: field "upstreem" not found`) {
		t.Fatalf("reload of a bad file: %v", err)
	}
	wantStatus(t, get(t, srv.URL+"/new"), 404)

	// Live settings of a messaging config reload.
	c := parse(t, good("/new"))
	c.Messaging[0].RequestTimeoutMs = 1500
	c.Messaging[0].MaxInflight = 7
	c.Messaging[0].OverflowPolicy = gateway.OverflowReject
	if err := gw.Reload(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, get(t, srv.URL+"/new"), 200)
	wantStatus(t, get(t, srv.URL+"/kept"), 404)
	if s, f, last := reloadMetrics(t, e); s != 1 || f != float64(len(refused)+1) || last != 1 {
		t.Fatalf("reloads success %v failure %v, last successful %v; want 1, %d, 1", s, f, last, len(refused)+1)
	}
}

// max_inflight changes live, in place: the calls in flight count against
// the new bound whatever bound they started under. Raised, it admits only
// as many more as it has room for; lowered, none until fewer than it are
// in flight; and reloads in a row do not start empty bounds that would
// stack up.
func TestReloadMaxInflight(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	config := func(max int) string { return guardedConfig(up.URL, max, gateway.OverflowReject) }
	gw, srv := e.gateway(config(2))
	v := e.valve("guard", next())
	held := make(chan result, 4)
	hold := func(n int64) {
		t.Helper()
		go func() { held <- get(t, srv.URL+"/g") }()
		eventually(t, v.receivedN(n))
	}
	answered := func() {
		t.Helper()
		v.let(1)
		if r := <-held; r.Status != 200 {
			t.Fatalf("held call: status %d, body %q", r.Status, r.Body)
		}
	}
	full := func(why string) {
		t.Helper()
		if r := get(t, srv.URL+"/g"); r.Status != 503 {
			t.Fatalf("%s: status %d, want 503", why, r.Status)
		}
	}
	hold(1)
	hold(2)
	full("2 in flight, max_inflight 2")

	reload(t, gw, config(3))
	hold(3)
	full("3 in flight after raising max_inflight to 3: room for one more, not three")
	reload(t, gw, config(2))
	reload(t, gw, config(3))
	full("3 in flight after reloads to 2 and 3")

	reload(t, gw, config(1))
	answered()
	full("2 in flight after lowering max_inflight to 1")
	answered()
	full("1 in flight, max_inflight 1")
	answered()
	hold(4)
	full("1 in flight, max_inflight 1")
	answered()
	if n := v.received.Load(); n != 4 {
		t.Fatalf("the plugin received %d calls, want 4", n)
	}
}

// A configuration without messaging configs has an implied one, named
// default: a first messaging section that is that config, with caller
// settings of its own, reloads, and so does removing it; one that changes
// the connection, prefix or dead-letter stream, or names another config,
// is refused naming the field.
func TestReloadImpliedMessagingSection(t *testing.T) {
	e := newEnv(t)
	routes := `
routes:
  - {path: /fn, function: fn}
`
	gw, srv := e.gateway(routes)
	v := e.valve("fn", end(body("fn")))
	held := make(chan result, 3)
	hold := func(n int64) {
		t.Helper()
		go func() { held <- get(t, srv.URL+"/fn") }()
		eventually(t, v.receivedN(n))
	}
	answered := func() {
		t.Helper()
		v.let(1)
		if r := <-held; r.Status != 200 || r.Body != "fn" {
			t.Fatalf("held call: status %d, body %q; want 200 fn", r.Status, r.Body)
		}
	}

	// Added: the implied config with a bound of its own, which applies at
	// once to the function route it carries.
	reload(t, gw, "messaging:\n  - {name: default, max_inflight: 1, overflow_policy: reject}\n"+routes)
	hold(1)
	wantStatus(t, get(t, srv.URL+"/fn"), 503)
	// Spelled out: the type and prefix it had are no change.
	reload(t, gw, "messaging:\n  - {name: default, type: nats, subject_prefix: nylon.dev, max_inflight: 1, overflow_policy: reject}\n"+routes)
	wantStatus(t, get(t, srv.URL+"/fn"), 503)

	// Removed: back to the defaults (1024, queue), which admit two more
	// calls beside the one still in flight.
	reload(t, gw, routes)
	hold(2)
	hold(3)
	for range 3 {
		answered()
	}

	// Back to the implied config: a section that is not it is refused.
	refused := []struct{ yaml, want string }{
		{"messaging:\n  - {name: nats, max_inflight: 1}\n",
			`messaging: configs [nats], were [default] (implied: none configured)`},
		{"messaging:\n  - {name: default}\n  - {name: second}\n",
			`messaging: configs [default second], were [default] (implied: none configured)`},
		{"messaging:\n  - {name: default, subject_prefix: nylon.other}\n",
			`messaging[0].subject_prefix: changed from "nylon.dev" to "nylon.other"`},
		{"messaging:\n  - {name: default, servers: [\"" + e.url + "\"]}\n",
			`messaging[0].servers: changed`},
		{"messaging:\n  - {name: default, dlq: {max_msgs: 5}}\n",
			`messaging[0].dlq: changed`},
	}
	for _, tt := range refused {
		err := gw.Reload(context.Background(), parse(t, tt.yaml+routes))
		if !errors.Is(err, gateway.ErrRestartRequired) || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("adding %q: %v, want %q: needs a restart", tt.yaml, err, tt.want)
		}
	}

	if s, f, _ := reloadMetrics(t, e); s != 3 || f != float64(len(refused)) {
		t.Fatalf("reloads success %v failure %v; want 3, %d", s, f, len(refused))
	}

	// A gateway started with a section removes it when it is the implied
	// config with caller settings of its own; else it is refused.
	for _, tt := range []struct{ yaml, want string }{
		{"messaging:\n  - {name: default, subject_prefix: nylon.dev, request_timeout_ms: 300, max_inflight: 5, overflow_policy: shed}\n", ""},
		{"messaging:\n  - {name: nats, max_inflight: 1}\n",
			`messaging: configs [default] (implied: none configured), were [nats]`},
		{"messaging:\n  - {name: default, dlq: {disabled: true}}\n",
			`messaging[0].dlq: changed from {Disabled:true MaxMsgs:0 MaxBytes:0 MaxAgeHours:0 Replicas:0} to {Disabled:false MaxMsgs:0 MaxBytes:0 MaxAgeHours:0 Replicas:0} (the dead-letter stream is made at start) by removing the messaging section`},
	} {
		other, err := gateway.New(parse(t, tt.yaml+routes), e.nc, gateway.WithRegisterer(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		err = other.Reload(context.Background(), parse(t, routes))
		switch {
		case tt.want == "" && err != nil:
			t.Fatalf("removing %q: %v, want it reloaded", tt.yaml, err)
		case tt.want != "" && (!errors.Is(err, gateway.ErrRestartRequired) || !strings.Contains(err.Error(), tt.want)):
			t.Fatalf("removing %q: %v, want %q: needs a restart", tt.yaml, err, tt.want)
		}
		if err := other.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// guardedConfig routes /g to upstream behind the plugin guard, over a
// messaging config that bounds calls in flight to max under policy.
func guardedConfig(upstream string, max int, policy gateway.OverflowPolicy) string {
	return `
messaging:
  - name: nats
    subject_prefix: "nylon.dev"
    request_timeout_ms: 10000
    max_inflight: ` + strconv.Itoa(max) + `
    overflow_policy: ` + string(policy) + `
plugins:
  - {name: guard, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /g, upstream: "` + upstream + `", plugins: [guard]}
`
}
