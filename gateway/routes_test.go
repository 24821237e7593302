package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

func TestSetFunctionRoutes(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	hello := e.serve("hello", protocol.PhaseRequestFilter, func(c *call) answer {
		v, _ := protocol.Lookup(c.Inv.Config, "who")
		return end(body("hello " + v))
	})
	logs := e.serve("hello", protocol.PhaseLogging, func(c *call) answer { return next() })
	e.serve("other", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("other")) })
	gw, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: /static, upstream: "` + up.URL + `"}
`)
	wantStatus(t, get(t, srv.URL+"/hello"), 404)

	err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/hello", Function: "hello", Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter, protocol.PhaseLogging),
			Config: map[string]string{"who": "world"}, Timeout: time.Second},
		{Path: "/static", Function: "other"}, // the configured route wins
		{Path: "/bad", Function: "Not-A-Name"},
	})
	if err == nil || !strings.Contains(err.Error(), "Not-A-Name") {
		t.Fatalf("SetFunctionRoutes error %v: want the invalid entry reported", err)
	}
	// At once, no polling: the table was swapped before SetFunctionRoutes returned.
	r := get(t, srv.URL+"/hello")
	wantStatus(t, r, 200)
	if r.Body != "hello world" {
		t.Fatalf("body %q", r.Body)
	}
	if s := get(t, srv.URL+"/static"); s.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("/static answered by %q, want the configured upstream", s.Body)
	}
	if !strings.Contains(e.log.String(), "configured route wins") {
		t.Fatal("conflict not logged")
	}
	eventually(t, wantCount(logs, 1)) // the function's logging phase runs too

	if err := gw.SetFunctionRoutes(nil); err != nil {
		t.Fatal(err)
	}
	r = get(t, srv.URL+"/hello")
	wantStatus(t, r, 404)
	if p := r.problem(t); p.Type != gateway.ProblemNotFound {
		t.Fatalf("problem %+v", p)
	}
	if hello.count() != 1 {
		t.Fatalf("hello calls %d", hello.count())
	}
	wantStatus(t, get(t, srv.URL+"/static"), 200)
}

func TestFunctionRouteWithoutNodeIs503(t *testing.T) {
	e := newEnv(t)
	gw, srv := e.gateway(yamlMessaging(""))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/gone", Function: "gone"}}); err != nil {
		t.Fatal(err)
	}
	r := get(t, srv.URL+"/gone")
	wantStatus(t, r, 503)
	if p := r.problem(t); p.Type != gateway.ProblemNoResponder {
		t.Fatalf("problem %+v", p)
	}
}

// TestNewFunctionWaitsForItsFirstNode: a function deployed moments ago has
// no node yet (nodes load the module first); its requests wait for one
// instead of failing with 503, up to the call's timeout. An older
// function without nodes is 503 at once, as before.
func TestNewFunctionWaitsForItsFirstNode(t *testing.T) {
	e := newEnv(t)
	gw, srv := e.gateway(yamlMessaging(""), gateway.WithFirstNodeWait(300*time.Millisecond))
	now := time.Now()
	err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/new", Function: "fresh", Timeout: 10 * time.Second, Deployed: now},
		{Path: "/short", Function: "unserved", Timeout: 100 * time.Millisecond, Deployed: now},
		{Path: "/old", Function: "old", Timeout: 10 * time.Second, Deployed: now.Add(-2 * time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}

	type res struct {
		r       result
		elapsed time.Duration
	}
	got := make(chan res, 1)
	go func() {
		start := time.Now()
		r := get(t, srv.URL+"/new")
		got <- res{r, time.Since(start)}
	}()
	// The node comes up while the request waits for it.
	const nodeAfter = 400 * time.Millisecond
	time.Sleep(nodeAfter)
	fresh := e.serve("fresh", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("fresh")) })
	r := <-got
	if r.r.Status != 200 || r.r.Body != "fresh" {
		t.Fatalf("GET /new = %d %q, want 200 from the node that came up while the request waited", r.r.Status, r.r.Body)
	}
	if r.elapsed < nodeAfter {
		t.Fatalf("GET /new answered after %v, before its node was up (%v)", r.elapsed, nodeAfter)
	}
	if n := fresh.count(); n != 1 {
		t.Fatalf("the node got %d calls, want 1", n)
	}

	// The wait has a bound (300 ms here, longer than /short's timeout):
	// then 503, as without a node.
	start := time.Now()
	r2 := get(t, srv.URL+"/short")
	wantStatus(t, r2, 503)
	if p := r2.problem(t); p.Type != gateway.ProblemNoResponder {
		t.Fatalf("problem %+v", p)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("GET /short gave up after %v, before the wait's 300ms bound", el)
	}
	// One failed call, counted once: neither /new's wait nor the polls of
	// /short's are failed attempts.
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", nil); got != 1 {
		t.Fatalf("errors_total %v, want 1 (the NoResponder of /short)", got)
	}

	// Deployed longer ago than the grace: nobody serves it, 503 at once
	// (well within the route's 10 s timeout, which a wait would use up).
	code, _, err := getWithin(srv.URL+"/old", 5*time.Second)
	if err != nil {
		t.Fatalf("GET /old: %v (a function deployed minutes ago must not wait for a node)", err)
	}
	if code != 503 {
		t.Fatalf("GET /old = %d, want 503", code)
	}
}

// getWithin GETs u, giving up after patience: a client's own timeout.
func getWithin(u string, patience time.Duration) (code int, body string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// waitersLogged waits until n calls have logged that they wait for a
// first node.
func waitersLogged(t *testing.T, e *env, n int) {
	t.Helper()
	eventually(t, func() error {
		if got := strings.Count(e.log.String(), "waiting for one"); got < n {
			return fmt.Errorf("%d calls have waited, want %d", got, n)
		}
		return nil
	})
}

// TestFirstNodeWaitIsBounded: only so many calls of a new function wait
// for its first node at once; the others are answered 503 at once, as a
// flood at a function no node loads must not pile up held requests. A call
// that stops waiting frees its place.
func TestFirstNodeWaitIsBounded(t *testing.T) {
	e := newEnv(t)
	gw, srv := e.gateway(yamlMessaging(""), gateway.WithFirstNodeMaxWaiting(2))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/new", Function: "fresh", Timeout: 10 * time.Second, Deployed: time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	try := func(patience time.Duration) (int, string, error) { return getWithin(srv.URL+"/new", patience) }

	// Two impatient calls wait; a third meanwhile is 503 at once.
	left := make(chan error, 2)
	for range 2 {
		go func() { _, _, err := try(time.Second); left <- err }()
	}
	waitersLogged(t, e, 2)
	if code, _, err := try(5 * time.Second); err != nil || code != 503 {
		t.Fatalf("a third call = %d, %v; want 503 at once with two waiting", code, err)
	}
	// The log says why it did not wait, for whoever reads a flood's 503s.
	if !strings.Contains(e.log.String(), "not waiting for the new function's first node: 2 calls of this route already wait") {
		t.Errorf("the refused wait is not logged with its cause:\n%s", e.log.String())
	}
	for range 2 {
		if err := <-left; err == nil {
			t.Fatal("an impatient call was answered, with no node serving")
		}
	}

	// Their places are free again: two more calls wait, and get the node's
	// answer once it is up.
	type outcome struct {
		code int
		body string
		err  error
	}
	got := make(chan outcome, 2)
	for range 2 {
		go func() {
			// Until the gateway has seen the impatient clients go (a
			// closed connection cancels the request's context, which a
			// busy machine may take a moment to notice), a call is
			// answered 503 at once: call again.
			deadline := time.Now().Add(10 * time.Second)
			for {
				c, b, err := try(10 * time.Second)
				if err == nil && c == 503 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				got <- outcome{c, b, err}
				return
			}
		}()
	}
	waitersLogged(t, e, 4)
	e.serve("fresh", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("fresh")) })
	for range 2 {
		if a := <-got; a.err != nil || a.code != 200 || a.body != "fresh" {
			t.Fatalf("a waiting call = %d %q %v, want 200 from the node", a.code, a.body, a.err)
		}
	}
}

// TestFirstNodeWaitBoundOutlivesARouteRebuild: every registry change
// installs the route table anew; the calls still waiting on the table
// before count against the bound of their route, or each deploy of any
// function would let another 1024 calls of a flood wait. Their places are
// freed when they stop waiting, as before.
func TestFirstNodeWaitBoundOutlivesARouteRebuild(t *testing.T) {
	e := newEnv(t)
	gw, srv := e.gateway(yamlMessaging(""), gateway.WithFirstNodeMaxWaiting(2))
	routes := []gateway.FunctionRoute{{Path: "/new", Function: "fresh", Timeout: 10 * time.Second, Deployed: time.Now()}}
	if err := gw.SetFunctionRoutes(routes); err != nil {
		t.Fatal(err)
	}
	try := func(patience time.Duration) (int, error) {
		code, _, err := getWithin(srv.URL+"/new", patience)
		return code, err
	}

	left := make(chan error, 2)
	for range 2 {
		go func() { _, err := try(1500 * time.Millisecond); left <- err }()
	}
	waitersLogged(t, e, 2)
	// Another function is deployed: the table, and /new's target, are new.
	routes = append(routes, gateway.FunctionRoute{Path: "/other", Function: "other", Timeout: time.Second})
	if err := gw.SetFunctionRoutes(routes); err != nil {
		t.Fatal(err)
	}
	if code, err := try(time.Second); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("a third call after the rebuild = %d, %v; want 503 at once with two waiting", code, err)
	}
	for range 2 {
		if err := <-left; err == nil {
			t.Fatal("an impatient call was answered, with no node serving")
		}
	}
	// They have left: once the gateway has seen them go (a closed
	// connection cancels the request's context, which a busy machine may
	// take a moment to notice), a call waits again. Until then a call is
	// answered 503 at once, so try again.
	eventually(t, func() error {
		_, _ = try(200 * time.Millisecond)
		if got := strings.Count(e.log.String(), "waiting for one"); got < 3 {
			return fmt.Errorf("%d calls have waited, want 3", got)
		}
		return nil
	})
}

// TestLoggingCallsDoNotWaitForAFirstNode: a new function's logging call
// that finds no node fails at once instead of holding a worker of the
// shared logging pool for seconds.
func TestLoggingCallsDoNotWaitForAFirstNode(t *testing.T) {
	e := newEnv(t)
	gw, srv := e.gateway(yamlMessaging(""))
	e.serve("fresh", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("fresh")) })
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/new", Function: "fresh", Timeout: 10 * time.Second,
		Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter, protocol.PhaseLogging), Deployed: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if r := get(t, srv.URL+"/new"); r.Status != 200 || r.Body != "fresh" {
		t.Fatalf("GET /new = %d %q", r.Status, r.Body)
	}
	// The logging call failed without waiting: well within a second, not
	// after the 10 s a wait would take.
	testutil.Eventually(t, time.Second, 10*time.Millisecond, func() error {
		n, err := testutil.GatherSum(e.reg, "plugins_messaging_errors_total", map[string]string{"phase": "logging", "kind": gateway.KindNoResponder})
		if err != nil || n != 1 {
			return fmt.Errorf("logging NoResponder errors %v, %v", n, err)
		}
		return nil
	})
	if strings.Contains(e.log.String(), "waiting for one") {
		t.Fatalf("a call waited for a first node:\n%s", e.log.String())
	}
}

// TestFirstNodeWaitEndsWithTheClient: a client that leaves while its
// request waits for a new function's first node ends the wait, and the
// request is not dead-lettered (nothing failed but the client's patience).
func TestFirstNodeWaitEndsWithTheClient(t *testing.T) {
	e := newEnv(t)
	gw, srv := e.gateway(yamlMessaging(""))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/new", Function: "fresh", Timeout: 10 * time.Second, Deployed: time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	if code, _, err := getWithin(srv.URL+"/new", 300*time.Millisecond); err == nil {
		t.Fatalf("GET /new = %d before any node served it; want the client's own timeout", code)
	}
	eventually(t, func() error {
		if n := testutil.MetricSum(t, e.reg, "plugins_messaging_inflight", nil); n != 0 {
			return fmt.Errorf("inflight %v", n)
		}
		return nil
	})
	if n := testutil.MetricSum(t, e.reg, "plugins_messaging_dlq_total", nil); n != 0 {
		t.Fatalf("dlq_total %v: a request its client left is not a dead letter", n)
	}
}

func TestFunctionRoutesWithoutMessagingConfig(t *testing.T) {
	// No YAML at all: the implicit messaging config uses nylon.{env}.
	e := newEnv(t)
	e.serve("hi", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("hi")) })
	gw, srv := e.gateway("")
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/hi/*", Function: "hi"}}); err != nil {
		t.Fatal(err)
	}
	if r := get(t, srv.URL+"/hi/there"); r.Body != "hi" {
		t.Fatalf("response %d %q", r.Status, r.Body)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	n := e.serve("inspect", protocol.PhaseRequestFilter, func(c *call) answer { return next() })
	_, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: inspect, messaging: nats, per_phase: {request_filter: {}}}
routes:
  - {path: /buffered, upstream: "` + up.URL + `", plugins: [inspect], max_body_bytes: 16}
  - {path: /streamed, upstream: "` + up.URL + `", max_body_bytes: 16}
`)
	wantStatus(t, do(t, http.MethodPost, srv.URL+"/buffered", strings.Repeat("a", 16)), 200)
	r := do(t, http.MethodPost, srv.URL+"/buffered", strings.Repeat("a", 17))
	wantStatus(t, r, 413)
	if p := r.problem(t); p.Type != gateway.ProblemTooLarge {
		t.Fatalf("problem %+v", p)
	}
	if n.count() != 1 {
		t.Fatalf("plugin calls %d: the oversized body must not be sent", n.count())
	}
	// Chunked (no Content-Length), so the limit is found while streaming.
	for _, size := range []int{16, 17, 100_000} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/streamed", io.MultiReader(strings.NewReader(strings.Repeat("b", size))))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := 200
		if size > 16 {
			want = 413
		}
		if resp.StatusCode != want {
			t.Fatalf("streamed body of %d bytes: status %d, want %d", size, resp.StatusCode, want)
		}
	}
}

func TestMethodsAndStripPrefix(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	_, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: /v1/*, upstream: "` + up.URL + `", methods: [get], strip_prefix: /v1}
`)
	r := get(t, srv.URL+"/v1/users/1")
	wantStatus(t, r, 200)
	if p := up.last.Load().URL.Path; p != "/users/1" {
		t.Fatalf("upstream path %q, want /users/1", p)
	}
	r = do(t, http.MethodPost, srv.URL+"/v1/users/1", "x")
	wantStatus(t, r, 405)
	if p := r.problem(t); p.Type != gateway.ProblemMethodNotAllowed {
		t.Fatalf("problem %+v", p)
	}
}

func TestUpstreamDown(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	url := up.URL
	up.Close()
	_, srv := e.gateway(yamlMessaging("") + `
routes:
  - {path: /down, upstream: "` + url + `"}
`)
	r := get(t, srv.URL+"/down")
	wantStatus(t, r, 502)
	if p := r.problem(t); p.Type != gateway.ProblemUpstream || strings.Contains(r.Body, "refused") {
		t.Fatalf("problem %+v", p)
	}
}

func TestWebSocketRoutesGoToTheEdge(t *testing.T) {
	e := newEnv(t)
	var seen gateway.RouteInfo
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = gateway.RouteOf(r.Context())
		w.WriteHeader(http.StatusTeapot) // stands in for the upgrade
	})
	n := e.serve("chat", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("plain http")) })
	_, srv := e.gateway(yamlMessaging("")+`
routes:
  - {path: "/chat/{room}", function: chat, websocket: true, config: {k: v}}
`, gateway.WithWebSocket(ws))
	r := get(t, srv.URL+"/chat/lobby", "Connection", "Upgrade", "Upgrade", "websocket")
	wantStatus(t, r, http.StatusTeapot)
	if seen.Function != "chat" || seen.Params["room"] != "lobby" || seen.Config["k"] != "v" || seen.Pattern != "/chat/{room}" {
		t.Fatalf("route info %+v", seen)
	}
	if r := get(t, srv.URL+"/chat/lobby"); r.Body != "plain http" || n.count() != 1 {
		t.Fatalf("plain request: %d %q", r.Status, r.Body)
	}
}

// The WebSocket edge learns, through RouteOf, how long to wait for the
// first node of a function deployed moments ago (as HTTP calls do); a
// function deployed longer ago, or a configured route, gets no wait.
func TestWebSocketRouteInfoCarriesTheFirstNodeWait(t *testing.T) {
	e := newEnv(t)
	seen := map[string]gateway.RouteInfo{}
	var mu sync.Mutex
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri, _ := gateway.RouteOf(r.Context())
		mu.Lock()
		seen[ri.Pattern] = ri
		mu.Unlock()
		w.WriteHeader(http.StatusTeapot)
	})
	gw, srv := e.gateway(yamlMessaging("")+`
routes:
  - {path: /configured, function: chat, websocket: true}
`, gateway.WithWebSocket(ws), gateway.WithFirstNodeWait(3*time.Second))
	events := protocol.PhaseSetOf(protocol.PhaseEvent)
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/new", Function: "fresh", Phases: events, Deployed: time.Now()},
		{Path: "/old", Function: "stale", Phases: events, Deployed: time.Now().Add(-2 * time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/new", "/old", "/configured"} {
		wantStatus(t, get(t, srv.URL+path, "Connection", "Upgrade", "Upgrade", "websocket"), http.StatusTeapot)
	}
	mu.Lock()
	defer mu.Unlock()
	for path, want := range map[string]time.Duration{"/new": 3 * time.Second, "/old": 0, "/configured": 0} {
		if got := seen[path].FirstNodeWait; got != want {
			t.Errorf("%s: FirstNodeWait %v, want %v", path, got, want)
		}
	}
}

func TestWebSocketUpgradeThroughGateway(t *testing.T) {
	e := newEnv(t)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept through the gateway's writer: %v", err)
			return
		}
		defer c.CloseNow()
		ri, _ := gateway.RouteOf(r.Context())
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		_ = c.Write(r.Context(), typ, []byte(ri.Function+":"+string(msg)))
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
	_, srv := e.gateway(yamlMessaging("")+`
routes:
  - {path: /ws, function: chat, websocket: true}
`, gateway.WithWebSocket(echo))
	if got := wsRoundTrip(t, srv.URL+"/ws", "hi"); got != "chat:hi" {
		t.Fatalf("echo %q, want chat:hi", got)
	}
	// The request ends with the connection; then it is counted as a 101.
	eventually(t, func() error {
		v, err := testutil.GatherSum(e.reg, "nylon_http_requests_total", map[string]string{"route": "/ws", "code": "101"})
		if err == nil && v != 1 {
			err = fmt.Errorf("requests_total{code=101} = %v", v)
		}
		return err
	})
}
