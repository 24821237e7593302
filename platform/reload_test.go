package platform_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

func TestRedeployUnderLoadLosesNothing(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Config: map[string]string{"label": "v1"}}, counterDir)
	n := e.startNode("n1")

	// Load runs until at least 1000 requests are done and both redeploys
	// (the second also moves the endpoints to another queue group) are
	// served; every request must succeed.
	const min = 1000
	var done, failed atomic.Int64
	var firstErr atomic.Value
	labels := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second)
				if err == nil && resp.Action != protocol.ActionEnd {
					err = fmt.Errorf("action %v: %s", resp.Action, resp.Error)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					labels.Store(header(t, resp, "X-Label"), true)
				}
				done.Add(1)
			}
		}()
	}
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		if done.Load() < 100 {
			return fmt.Errorf("%d requests done", done.Load())
		}
		return nil
	})
	e.deploy(registry.Spec{Name: "counter", Config: map[string]string{"label": "v2"}}, counterDir)
	waitServing(t, n, "counter", 2)
	e.deploy(registry.Spec{Name: "counter", Config: map[string]string{"label": "v3"}, QueueGroup: "other"}, counterDir)
	waitServing(t, n, "counter", 3)
	testutil.Eventually(t, 60*time.Second, 5*time.Millisecond, func() error {
		if _, ok := labels.Load("v3"); !ok || done.Load() < min {
			return fmt.Errorf("%d requests done", done.Load())
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d requests failed during the redeploys; first: %v", f, done.Load(), firstErr.Load())
	}
	for _, l := range []string{"v1", "v2", "v3"} {
		if _, ok := labels.Load(l); !ok {
			t.Errorf("no reply from version %s", l)
		}
	}
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		info := serviceInfos(t, e.nc, "counter", 1)[0]
		if len(info.Endpoints) != 1 || info.Endpoints[0].QueueGroup != "other" || info.Version != "1.0.3" {
			return fmt.Errorf("after the redeploys: version %s endpoints %+v", info.Version, info.Endpoints)
		}
		return nil
	})
}

// waitServing waits until n serves version of function name.
func waitServing(t *testing.T, n *platform.Node, name string, version uint64) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		for _, f := range n.Health().Functions {
			if f.Name == name && f.Version == version && f.State == platform.FunctionServing {
				return nil
			}
		}
		return fmt.Errorf("node %s does not serve %s version %d: %+v", n.ID(), name, version, n.Health().Functions)
	})
}

func TestReloadChangesEndpoints(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "fn"}, helloDir) // request_filter
	n := e.startNode("n1")
	if _, _, err := call(e.nc, "fn", request(protocol.PhaseRequestFilter, ""), 5*time.Second); err != nil {
		t.Fatal(err)
	}

	e.deploy(registry.Spec{Name: "fn"}, headersDir) // response_filter only
	waitServing(t, n, "fn", 2)
	// The dropped endpoint drains after the swap.
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		info := serviceInfos(t, e.nc, "fn", 1)[0]
		if len(info.Endpoints) != 1 || info.Endpoints[0].Subject != "nylon.dev.fn.response_filter" || info.Version != "1.0.2" {
			return fmt.Errorf("after the phase change: version %s endpoints %+v", info.Version, info.Endpoints)
		}
		return nil
	})
	if _, _, err := call(e.nc, "fn", request(protocol.PhaseRequestFilter, ""), 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("request_filter after it was dropped: %v, want no responders", err)
	}
	req := request(protocol.PhaseResponseFilter, "")
	inv := protocol.Invocation{
		Request:  protocol.HTTPRequest{Method: "GET", Path: "/"},
		Response: &protocol.HTTPResponse{Status: 200, Headers: []protocol.Header{{Name: "Server", Value: "nginx"}}},
	}
	req.Data = protocol.AppendInvocation(nil, &inv)
	resp, _, err := call(e.nc, "fn", req, 5*time.Second)
	if err != nil || resp.Action == protocol.ActionError {
		t.Fatalf("response_filter: %v %+v", err, resp)
	}
	if header(t, resp, "X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers module did not run")
	}
}

func TestLoadErrorKeepsPreviousVersion(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Config: map[string]string{"label": "v1"}}, counterDir)
	metrics := prometheus.NewRegistry()
	var logs testutil.SyncBuffer
	n := e.startNode("n1", withMetrics(metrics), func(c *platform.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })

	// The registry stores what it is given; the admin API validates first,
	// but a node must survive a module it cannot load.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.reg.Deploy(ctx, registry.Spec{Name: "counter", Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter)},
		[]byte("this is not a wasm module")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		h := n.Health()
		if h.Status != platform.HealthDegraded || len(h.Functions) != 1 {
			return fmt.Errorf("health %+v", h)
		}
		f := h.Functions[0]
		if f.State != platform.FunctionDegraded || f.Version != 1 || f.ErrorVersion != 2 || !strings.Contains(f.Error, "not a wasm") {
			return fmt.Errorf("function health %+v", f)
		}
		return nil
	})
	if got := testutil.MetricSum(t, metrics, "nylon_function_load_errors_total", map[string]string{"function": "counter"}); got != 1 {
		t.Errorf("load errors = %v, want 1", got)
	}
	if l := logs.String(); !strings.Contains(l, `msg="platform: load failed"`) || !strings.Contains(l, " version=2 ") || !strings.Contains(l, " still_serving=1 ") {
		t.Errorf("the load error is not logged with the version still serving:\n%s", l)
	}
	if got := testutil.MetricSum(t, metrics, "nylon_function_degraded", map[string]string{"function": "counter"}); got != 1 {
		t.Errorf("degraded gauge = %v, want 1", got)
	}
	resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second)
	if err != nil || header(t, resp, "X-Label") != "v1" {
		t.Fatalf("version 1 stopped serving: %v", err)
	}

	// Rolling back to the version still serving clears the error...
	if _, err := e.reg.Rollback(ctx, "counter", 1); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		if h := n.Health(); h.Status != platform.HealthOK || h.Functions[0].Error != "" || h.Functions[0].Version != 1 {
			return fmt.Errorf("health after rolling back to the serving version: %+v", h)
		}
		return nil
	})
	// ... and so does the next good version.
	if _, err := e.reg.Rollback(ctx, "counter", 2); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		if h := n.Health(); h.Status != platform.HealthDegraded {
			return fmt.Errorf("health after rolling forward to the bad version: %+v", h)
		}
		return nil
	})
	e.deploy(registry.Spec{Name: "counter", Config: map[string]string{"label": "v3"}}, counterDir)
	waitServing(t, n, "counter", 3)
	if h := n.Health(); h.Status != platform.HealthOK || h.Functions[0].Error != "" {
		t.Errorf("health after a good version: %+v", h)
	}
	if got := testutil.MetricSum(t, metrics, "nylon_function_loaded_version", map[string]string{"function": "counter"}); got != 3 {
		t.Errorf("loaded version gauge = %v, want 3", got)
	}
	if got := testutil.MetricSum(t, metrics, "nylon_function_load_errors_total", map[string]string{"function": "counter"}); got != 2 {
		t.Errorf("load errors = %v, want 2 (version 2 was tried twice)", got)
	}
}

// A module the registry cannot hand out yet (a replica that lags behind
// the record, JetStream unavailable for a while) is fetched again, with
// backoff, until it can be: the node does not wait for the next deploy.
func TestLoadRetriesWhileTheModuleCannotBeRead(t *testing.T) {
	e := newEnv(t)
	rec := e.deploy(registry.Spec{Name: "counter"}, counterDir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obs, err := testutil.JetStream(t, e.nc).ObjectStore(ctx, registry.ModulesBucket(e.reg.Env()))
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(ctx, rec.SHA256); err != nil {
		t.Fatal(err)
	}
	metrics := prometheus.NewRegistry()
	n := e.startNode("n1", withMetrics(metrics))
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		if h := n.Health(); len(h.Functions) != 1 || h.Functions[0].State != platform.FunctionFailed || !strings.Contains(h.Functions[0].Error, "not found") {
			return fmt.Errorf("health %+v, want counter failed: not found", h)
		}
		return nil
	})
	if _, err := obs.PutBytes(ctx, rec.SHA256, guest(t, counterDir)); err != nil {
		t.Fatal(err)
	}
	waitServing(t, n, "counter", rec.Version)
	if got := testutil.MetricSum(t, metrics, "nylon_function_load_errors_total", map[string]string{"function": "counter"}); got < 1 {
		t.Errorf("load errors = %v, want the failed attempts counted", got)
	}
}

func TestDeleteStopsServing(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "hello"}, helloDir)
	e.deploy(registry.Spec{Name: "other"}, helloDir)
	n := e.startNode("n1")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.reg.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		_, _, err := call(e.nc, "hello", request(protocol.PhaseRequestFilter, ""), time.Second)
		if !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("call after delete: %v", err)
		}
		return nil
	})
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if h := n.Health(); len(h.Functions) != 1 || h.Functions[0].Name != "other" {
			return fmt.Errorf("functions after delete = %+v", h.Functions)
		}
		return nil
	})
	if _, err := e.nc.Request("$SRV.PING.hello", nil, 300*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
		t.Errorf("the deleted service still answers discovery: %v", err)
	}

	// Deployed again, it serves again.
	e.deploy(registry.Spec{Name: "hello"}, helloDir)
	testutil.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		_, _, err := call(e.nc, "hello", request(protocol.PhaseRequestFilter, ""), time.Second)
		return err
	})
}
