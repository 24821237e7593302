package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// Reloads that move /shared between a configured route and a function
// route, change max_inflight under overflow_policy queue and a plugin's
// phases, race SetFunctionRoutes and requests. Every request gets an
// answer of the configuration it started in (queued callers of a
// replaced limiter are not stranded), no slot or in-flight count leaks,
// and the last configuration decides who owns /shared.
func TestReloadRacesFunctionRoutesAndRequests(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("gate", protocol.PhaseRequestFilter, func(c *call) answer {
		time.Sleep(2 * time.Millisecond)
		return next()
	})
	e.serve("gate", protocol.PhaseResponseFilter, func(c *call) answer { return next() })
	e.serve("fn", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("fn")) })
	config := func(max int, phases string, shared bool) string {
		y := `
messaging:
  - name: nats
    subject_prefix: "nylon.dev"
    request_timeout_ms: 5000
    max_inflight: ` + strconv.Itoa(max) + `
    overflow_policy: queue
plugins:
  - {name: gate, messaging: nats, per_phase: {` + phases + `}}
routes:
  - {path: /gated, upstream: "` + up.URL + `", plugins: [gate]}
`
		if shared {
			y += `  - {path: /shared, upstream: "` + up.URL + `", plugins: [gate]}
`
		}
		return y
	}
	configs := []string{
		config(1, "request_filter: {}", true),
		config(3, "request_filter: {}, response_filter: {}", false),
		config(2, "response_filter: {}", true),
		config(2, "request_filter: {}", false), // the max of the one before
	}
	parsed := make([]gateway.Config, len(configs))
	for i, y := range configs {
		parsed[i] = parse(t, y)
	}
	gw, srv := e.gateway(configs[0])
	routeSets := [][]gateway.FunctionRoute{
		{{Path: "/shared", Function: "fn"}, {Path: "/fnonly", Function: "fn"}},
		{{Path: "/fnonly", Function: "fn"}},
		nil,
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var served atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			paths := []string{"/gated", "/shared", "/fnonly"}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				p := paths[(i+n)%len(paths)]
				st, b, err := getWithin(srv.URL+p, 10*time.Second)
				if err != nil {
					report(err)
					return
				}
				served.Add(1)
				ok := st == http.StatusOK || (p != "/gated" && st == http.StatusNotFound)
				if st == http.StatusOK && p == "/fnonly" && b != "fn" {
					ok = false
				}
				if !ok {
					report(fmt.Errorf("GET %s: %d %q", p, st, b))
				}
			}
		})
	}
	// Each changer runs every millisecond until stop.
	changer := func(change func(i int) error) {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := change(i); err != nil {
					report(err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	changer(func(i int) error {
		if err := gw.Reload(ctx, parsed[i%len(parsed)]); err != nil {
			return fmt.Errorf("reload %d: %w", i, err)
		}
		return nil
	})
	changer(func(i int) error {
		// Conflicts with a configured /shared are reported, not errors.
		if err := gw.SetFunctionRoutes(routeSets[i%len(routeSets)]); err != nil {
			return fmt.Errorf("set function routes %d: %w", i, err)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("requests or reloads still running 17 s after the stop: a caller is stuck")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if served.Load() == 0 {
		t.Fatal("no request served")
	}
	if n := testutil.MetricSum(t, e.reg, "plugins_messaging_inflight", map[string]string{"plugin": "gate"}); n != 0 {
		t.Errorf("plugins_messaging_inflight{plugin=gate} = %v after every call returned, want 0", n)
	}

	// The last word: a configured /shared wins over the function's, and
	// gives it back when a reload removes it.
	if err := gw.SetFunctionRoutes(routeSets[0]); err != nil {
		t.Fatal(err)
	}
	reload(t, gw, configs[0])
	if r := get(t, srv.URL+"/shared"); r.Status != 200 || r.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("configured /shared: %d %q, want the upstream's answer", r.Status, r.Body)
	}
	if n := testutil.MetricSum(t, e.reg, "nylon_gateway_route_conflicts", map[string]string{"route": "/shared"}); n != 1 {
		t.Errorf("nylon_gateway_route_conflicts{route=/shared} = %v, want 1", n)
	}
	reload(t, gw, configs[1])
	if r := get(t, srv.URL+"/shared"); r.Status != 200 || r.Body != "fn" {
		t.Fatalf("/shared after the reload removed the configured route: %d %q, want fn's", r.Status, r.Body)
	}
	// No child left, or one at 0.
	if n, err := testutil.GatherSum(e.reg, "nylon_gateway_route_conflicts", map[string]string{"route": "/shared"}); err == nil && n != 0 {
		t.Errorf("nylon_gateway_route_conflicts{route=/shared} = %v once the function holds it, want 0", n)
	}
	if seriesWith(t, e.reg, "route", "/shared") == 0 || seriesWith(t, e.reg, "plugin", "gate") == 0 {
		t.Error("series of /shared or of plugin gate, both in use, were dropped")
	}

	// Every slot of the limiter is free: max_inflight 3 calls held at once
	// all get in under reject.
	hold := e.gated("hold")
	reload(t, gw, `
messaging:
  - name: nats
    subject_prefix: "nylon.dev"
    request_timeout_ms: 5000
    max_inflight: 3
    overflow_policy: reject
plugins:
  - {name: hold, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /held, upstream: "`+up.URL+`", plugins: [hold]}
`)
	results := make(chan int, 3)
	for range 3 {
		go func() {
			st, _, _ := getWithin(srv.URL+"/held", 10*time.Second)
			results <- st
		}()
	}
	eventually(t, func() error {
		if n := hold.received.Load(); n != 3 {
			return fmt.Errorf("%d of 3 calls reached the plugin", n)
		}
		return nil
	})
	close(hold.gate)
	for range 3 {
		if st := <-results; st != 200 {
			t.Errorf("held call: status %d", st)
		}
	}
}

// Calls waiting for a new function's first node across a Reload still
// count against their route's bound in the table the reload builds, and
// one of them is answered once the node is up.
func TestFirstNodeWaitBoundOutlivesAReload(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	gw, srv := e.gateway(yamlMessaging(""), gateway.WithFirstNodeMaxWaiting(2))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/new", Function: "fresh", Timeout: 10 * time.Second, Deployed: time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		code int
		body string
		err  error
	}
	got := make(chan outcome, 2)
	for range 2 {
		go func() { c, b, err := getWithin(srv.URL+"/new", 10*time.Second); got <- outcome{c, b, err} }()
	}
	waitersLogged(t, e, 2)
	reload(t, gw, yamlMessaging(`routes:
  - {path: /up, upstream: "`+up.URL+`"}
`))
	wantStatus(t, get(t, srv.URL+"/up"), 200)
	if code, _, err := getWithin(srv.URL+"/new", time.Second); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("a third call after the reload = %d, %v; want 503 at once with two waiting", code, err)
	}
	e.serve("fresh", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("fresh")) })
	for range 2 {
		if o := <-got; o.err != nil || o.code != 200 || o.body != "fresh" {
			t.Fatalf("a call waiting across the reload: %d %q %v, want the node's answer", o.code, o.body, o.err)
		}
	}
}

// Calls queued (overflow_policy queue) when a reload raises max_inflight
// get the new bound's room at once, with no call ending; when a reload
// lowers it under the calls in flight, a queued call waits until fewer
// than the new bound are in flight. No slot is left taken.
func TestReloadMaxInflightWithQueuedCalls(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	config := func(max int) string { return guardedConfig(up.URL, max, gateway.OverflowQueue) }
	gw, srv := e.gateway(config(1))
	v := e.valve("guard", next())
	type outcome struct {
		status int
		err    error
	}
	done := make(chan outcome, 4)
	call := func() {
		st, _, err := getWithin(srv.URL+"/g", 10*time.Second)
		done <- outcome{st, err}
	}
	answered := func() {
		t.Helper()
		select {
		case o := <-done:
			if o.err != nil || o.status != 200 {
				t.Fatalf("call: %d, %v; want 200", o.status, o.err)
			}
		case <-time.After(8 * time.Second):
			t.Fatal("a call is stuck")
		}
	}
	go call() // holds the only slot
	eventually(t, v.receivedN(1))
	go call() // these two queue behind it
	go call()
	v.stillReceived(t, 1, "max_inflight 1 with a call in flight")

	reload(t, gw, config(3))
	eventually(t, v.receivedN(3)) // the queued calls, at once
	go call()
	v.stillReceived(t, 3, "max_inflight 3 with 3 calls in flight")

	reload(t, gw, config(2))
	v.let(1)
	answered()
	v.stillReceived(t, 3, "max_inflight lowered to 2 with 2 calls in flight")
	v.let(1)
	answered()
	eventually(t, v.receivedN(4)) // 1 in flight: room under the bound of 2
	v.let(2)
	answered()
	answered()
	if n := testutil.MetricSum(t, e.reg, "plugins_messaging_inflight", map[string]string{"plugin": "guard"}); n != 0 {
		t.Errorf("plugins_messaging_inflight{plugin=guard} = %v after every call returned, want 0", n)
	}
}

// A request between two phases when a reload changes the plugin's phases
// runs the phases of the configuration it started in: it does not gain a
// response_filter call the new one adds, nor lose one the new one drops.
func TestReloadPhasesOfARequestBetweenPhases(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	release := make(chan struct{}, 1)
	var reqFilters atomic.Int32
	e.serveRaw("p", protocol.PhaseRequestFilter, func(req micro.Request) {
		c, ok := decodeCall(e.t, req)
		if !ok {
			return
		}
		reqFilters.Add(1)
		go func() {
			<-release
			respond(req, c, next())
		}()
	})
	resp := e.serve("p", protocol.PhaseResponseFilter, func(c *call) answer { return next() })
	config := func(phases string) string {
		return yamlMessaging(`plugins:
  - {name: p, messaging: nats, per_phase: {` + phases + `}}
routes:
  - {path: /p, upstream: "` + up.URL + `", plugins: [p]}
`)
	}
	onlyReq, both := config("request_filter: {}"), config("request_filter: {}, response_filter: {}")
	gw, srv := e.gateway(onlyReq)
	across := func(to string) {
		t.Helper()
		before := reqFilters.Load()
		done := make(chan outcomeOf, 1)
		go func() { st, b, err := getWithin(srv.URL+"/p", 10*time.Second); done <- outcomeOf{st, b, err} }()
		eventually(t, func() error {
			if reqFilters.Load() == before {
				return errors.New("the request has not reached request_filter")
			}
			return nil
		})
		reload(t, gw, to)
		release <- struct{}{}
		if o := <-done; o.err != nil || o.status != 200 {
			t.Fatalf("request across the reload: %d %q %v", o.status, o.body, o.err)
		}
	}
	across(both)
	if n := resp.count(); n != 0 {
		t.Fatalf("response_filter called %d times for a request that started without it", n)
	}
	release <- struct{}{}
	if st, _, err := getWithin(srv.URL+"/p", 10*time.Second); err != nil || st != 200 {
		t.Fatalf("request after the reload: %d %v", st, err)
	}
	if n := resp.count(); n != 1 {
		t.Fatalf("response_filter called %d times after the reload added it, want 1", n)
	}
	across(onlyReq)
	if n := resp.count(); n != 2 {
		t.Fatalf("response_filter called %d times in all, want 2: the request that started with it lost it", n)
	}
}

type outcomeOf struct {
	status int
	body   string
	err    error
}

// ReloadFile applies no environment overrides: a gateway started with a
// config ApplyEnv changed (NYLON_NATS_URLS, the standalone quick start)
// has every ReloadFile of its unchanged file refused as a change of
// servers. LoadConfig, ApplyEnv with the same lookup, then Reload, is how
// such a gateway reloads, as GATEWAY.md shows.
func TestReloadOfAConfigApplyEnvChanged(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(yamlMessaging("")), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) (string, bool) {
		if name == gateway.EnvNATSURLs {
			return e.url, true
		}
		return "", false
	}
	load := func() gateway.Config {
		t.Helper()
		cfg, err := gateway.LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.ApplyEnv(lookup); err != nil {
			t.Fatal(err)
		}
		return *cfg
	}
	gw, err := gateway.New(load(), e.nc, gateway.WithRegisterer(e.reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close(context.Background()) })

	err = gw.ReloadFile(context.Background(), path)
	if !errors.Is(err, gateway.ErrRestartRequired) || !strings.Contains(err.Error(), "messaging[0].servers: changed") {
		t.Fatalf("ReloadFile of the unchanged file after ApplyEnv: %v, want servers changed, needs a restart", err)
	}
	if err := gw.Reload(context.Background(), load()); err != nil {
		t.Fatalf("LoadConfig, ApplyEnv, Reload of the unchanged file: %v", err)
	}
}
