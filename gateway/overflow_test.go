package gateway_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// gated serves fn's request_filter, holding every call until the gate
// opens, and tracks how many are held at once.
type gated struct {
	gate     chan struct{}
	held     atomic.Int64
	maxHeld  atomic.Int64
	received atomic.Int64
}

func (e *env) gated(fn string) *gated {
	g := &gated{gate: make(chan struct{})}
	e.serveRaw(fn, protocol.PhaseRequestFilter, func(req micro.Request) {
		c, ok := decodeCall(e.t, req)
		if !ok {
			return
		}
		g.received.Add(1)
		h := g.held.Add(1)
		for {
			m := g.maxHeld.Load()
			if h <= m || g.maxHeld.CompareAndSwap(m, h) {
				break
			}
		}
		go func() {
			<-g.gate
			g.held.Add(-1)
			respond(req, c, next(reqHeader("X-Plugin", "ran")))
		}()
	})
	return g
}

func overflowGateway(t *testing.T, e *env, policy string, upURL string) string {
	_, srv := e.gateway(`
messaging:
  - name: nats
    subject_prefix: "nylon.dev"
    request_timeout_ms: 10000
    max_inflight: 2
    overflow_policy: ` + policy + `
plugins:
  - {name: guard, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /o, upstream: "` + upURL + `", plugins: [guard]}
`)
	return srv.URL
}

// fire sends n concurrent requests; results arrive on the channel.
func fire(t *testing.T, url string, n int) <-chan result {
	out := make(chan result, n)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := client.Get(url)
			if err != nil {
				t.Errorf("GET %s: %v", url, err)
				out <- result{}
				return
			}
			resp.Body.Close()
			out <- result{Status: resp.StatusCode, Header: resp.Header, Elapsed: time.Since(start)}
		}()
	}
	return out
}

func TestOverflowQueue(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	g := e.gated("guard")
	url := overflowGateway(t, e, "queue", up.URL)
	// A failed assertion must not leave the calls held: the server's
	// cleanup would wait for them.
	var once sync.Once
	open := func() { once.Do(func() { close(g.gate) }) }
	t.Cleanup(open)
	const n = 8
	results := fire(t, url+"/o", n)
	eventually(t, func() error {
		if g.held.Load() != 2 {
			return fmt.Errorf("%d calls held, want 2", g.held.Load())
		}
		return nil
	})
	// The gauge counts the calls on the wire, not the ones waiting for a
	// slot: the gateway increments it before it publishes, so with two
	// calls held by the node it already reads 2.
	inflight := map[string]string{"messaging": "nats", "plugin": "guard"}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_inflight", inflight); got != 2 {
		t.Fatalf("inflight = %v with 2 calls held and %d queued, want 2", got, n-2)
	}
	// The other six wait for a slot; open the gate and all succeed.
	open()
	for range n {
		r := <-results
		if r.Status != 200 {
			t.Fatalf("queued request got %d", r.Status)
		}
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_inflight", inflight); got != 0 {
		t.Fatalf("inflight = %v after every request was answered", got)
	}
	if g.maxHeld.Load() > 2 || g.received.Load() != n {
		t.Fatalf("max concurrent calls %d (limit 2), calls %d", g.maxHeld.Load(), g.received.Load())
	}
	if up.hits.Load() != n {
		t.Fatalf("upstream hits %d", up.hits.Load())
	}
}

func TestOverflowReject(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	g := e.gated("guard")
	url := overflowGateway(t, e, "reject", up.URL)
	const n = 8
	results := fire(t, url+"/o", n)
	eventually(t, func() error {
		if g.held.Load() != 2 {
			return fmt.Errorf("%d calls held, want 2", g.held.Load())
		}
		return nil
	})
	// With the gate still shut, the other six must come back: rejected.
	for range n - 2 {
		r := <-results
		if r.Status != 503 || r.Header.Get("Retry-After") == "" {
			t.Fatalf("over the limit: status %d, Retry-After %q; want 503 with Retry-After", r.Status, r.Header.Get("Retry-After"))
		}
		if r.Elapsed > 5*time.Second {
			t.Fatalf("rejection took %v", r.Elapsed)
		}
	}
	close(g.gate)
	for range 2 {
		if r := <-results; r.Status != 200 {
			t.Fatalf("admitted request got %d", r.Status)
		}
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", map[string]string{"plugin": "guard", "kind": gateway.KindOverloaded}); got != n-2 {
		t.Fatalf("errors_total{kind=Overloaded} = %v, want %d", got, n-2)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_dlq_total", nil); got != 0 {
		t.Fatalf("local rejections dead-lettered: %v", got)
	}
}

func TestOverflowShed(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	g := e.gated("guard")
	url := overflowGateway(t, e, "shed", up.URL)
	const n = 8
	results := fire(t, url+"/o", n)
	eventually(t, func() error {
		if g.held.Load() != 2 {
			return fmt.Errorf("%d calls held, want 2", g.held.Load())
		}
		return nil
	})
	// The six over the limit pass without the plugin.
	for range n - 2 {
		if r := <-results; r.Status != 200 {
			t.Fatalf("shed request got %d", r.Status)
		}
	}
	if up.hits.Load() != n-2 {
		t.Fatalf("upstream hits %d, want %d", up.hits.Load(), n-2)
	}
	if h := up.last.Load().Header.Get("X-Plugin"); h != "" {
		t.Fatalf("a shed request carries the plugin's header %q", h)
	}
	close(g.gate)
	for range 2 {
		if r := <-results; r.Status != 200 {
			t.Fatalf("admitted request got %d", r.Status)
		}
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_shed_total", map[string]string{"plugin": "guard"}); got != n-2 {
		t.Fatalf("shed_total = %v, want %d", got, n-2)
	}
	if g.received.Load() != 2 {
		t.Fatalf("the plugin ran %d times, want 2", g.received.Load())
	}
}

// valve serves fn's request_filter with a, holding each call until let
// lets it go (any one of those held). The calls still held when the test
// ends are let go then: make it after the gateway, whose cleanup waits
// for them.
type valve struct {
	release  chan struct{}
	done     chan struct{}
	received atomic.Int64
}

func (e *env) valve(fn string, a answer) *valve {
	v := &valve{release: make(chan struct{}, 1024), done: make(chan struct{})}
	e.serveRaw(fn, protocol.PhaseRequestFilter, func(req micro.Request) {
		c, ok := decodeCall(e.t, req)
		if !ok {
			return
		}
		v.received.Add(1)
		go func() {
			select {
			case <-v.release:
			case <-v.done:
			}
			respond(req, c, a)
		}()
	})
	e.t.Cleanup(func() { close(v.done) })
	return v
}

// let lets n held calls answer.
func (v *valve) let(n int) {
	for range n {
		v.release <- struct{}{}
	}
}

// receivedN is a condition for eventually: n calls reached the plugin.
func (v *valve) receivedN(n int64) func() error {
	return func() error {
		if got := v.received.Load(); got != n {
			return fmt.Errorf("the plugin received %d calls, want %d", got, n)
		}
		return nil
	}
}

// stillReceived checks, after a moment for any call to arrive, that the
// plugin received n calls: no more were admitted.
func (v *valve) stillReceived(t *testing.T, n int64, why string) {
	t.Helper()
	time.Sleep(100 * time.Millisecond)
	if got := v.received.Load(); got != n {
		t.Fatalf("the plugin received %d calls, want %d: %s", got, n, why)
	}
}
