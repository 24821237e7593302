package gateway_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// bodyLength is a stand-in function answering with the length of the
// request body it was sent.
func bodyLength(c *call) answer { return end(body(strconv.Itoa(len(c.Inv.Request.Body)))) }

// A function route takes its body limit from the deployment: above the
// 1 MiB default when the deployment says so, 413 beyond it without a call.
func TestFunctionRouteBodyLimit(t *testing.T) {
	e := newEnv(t)
	n := e.serve("big", protocol.PhaseRequestFilter, bodyLength)
	gw, srv := e.gateway(yamlMessaging(""))
	const limit = 2 << 20
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/big", Function: "big", MaxBodyBytes: limit},
		{Path: "/default", Function: "big"},
	}); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1<<20 + 1, limit} {
		r := do(t, http.MethodPost, srv.URL+"/big", strings.Repeat("a", size))
		wantStatus(t, r, 200)
		if r.Body != strconv.Itoa(size) {
			t.Fatalf("the function was sent %s bytes of a %d-byte body", r.Body, size)
		}
	}
	r := do(t, http.MethodPost, srv.URL+"/big", strings.Repeat("a", limit+1))
	wantStatus(t, r, 413)
	if p := r.problem(t); p.Type != gateway.ProblemTooLarge || !strings.Contains(p.Detail, strconv.Itoa(limit)) {
		t.Fatalf("problem %+v: want payload-too-large naming the limit", p)
	}
	// A route whose deployment sets no limit keeps the default.
	wantStatus(t, do(t, http.MethodPost, srv.URL+"/default", strings.Repeat("a", 1<<20+1)), 413)
	if n.count() != 2 {
		t.Fatalf("function calls %d, want 2: oversized bodies must not be sent", n.count())
	}
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/neg", Function: "big", MaxBodyBytes: -1}}); err == nil ||
		!strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative MaxBodyBytes: %v, want it refused", err)
	}
}

// A request larger than one NATS message can carry (a deployment whose
// limit is over the server's max_payload) cannot be sent at all: the
// client gets a 413 that says so, not a 502, and nothing is published.
func TestFunctionRouteOverNATSMaxPayload(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.MaxPayload = 256 << 10
	s := testutil.RunNATSWith(t, opts)
	e := &env{t: t, nc: testutil.Connect(t, s), url: s.ClientURL(), reg: prometheus.NewRegistry(), log: &testutil.SyncBuffer{}}
	n := e.serve("big", protocol.PhaseRequestFilter, bodyLength)
	gw, srv := e.gateway(yamlMessaging(""))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/big", Function: "big", MaxBodyBytes: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, do(t, http.MethodPost, srv.URL+"/big", strings.Repeat("a", 100<<10)), 200)

	r := do(t, http.MethodPost, srv.URL+"/big", strings.Repeat("a", 300<<10))
	wantStatus(t, r, 413)
	p := r.problem(t)
	if p.Type != gateway.ProblemTooLarge || !strings.Contains(p.Detail, "NATS") || !strings.Contains(p.Detail, strconv.Itoa(256<<10)) {
		t.Fatalf("problem %+v: want payload-too-large naming NATS's max_payload", p)
	}
	if n.count() != 1 {
		t.Fatalf("function calls %d, want 1", n.count())
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_errors_total", map[string]string{"plugin": "big", "kind": gateway.KindTooLarge}); got != 1 {
		t.Fatalf("errors_total{kind=TooLarge} = %v, want 1", got)
	}
}
