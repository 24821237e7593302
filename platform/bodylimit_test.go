package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// TestDeployedBodyLimit follows a deployment's max_body_bytes above the
// 1 MiB defaults end to end: the gateway's function route and the node both
// enforce it, on a real NATS server (max_payload 8 MiB) and a real guest.
func TestDeployedBodyLimit(t *testing.T) {
	const limit = 4 << 20
	e := newEnv(t)
	rec := e.deploy(registry.Spec{Name: "counter", Routes: []string{"/big"},
		Limits: registry.Limits{MaxBodyBytes: limit}}, counterDir)
	// The node's own PayloadLimits stay at their 1 MiB default: the
	// deployment's limit is the one that counts.
	reg := prometheus.NewRegistry()
	e.startNode("n1", withMetrics(reg))

	gw, err := gateway.New(gateway.Config{}, testutil.Connect(t, e.srv),
		gateway.WithLogger(testLogger()), gateway.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Close(ctx)
	})
	// What nylon serve builds from the registry record.
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: rec.Routes[0], Function: rec.Name,
		Phases: rec.PhaseSet, Config: rec.Config, Timeout: rec.Limits.Timeout(), MaxBodyBytes: rec.Limits.MaxBodyBytes}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)

	post := func(size int) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/big", "application/octet-stream", bytes.NewReader(make([]byte, size)))
		if err != nil {
			t.Fatalf("POST %d bytes: %v", size, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	executions := func() float64 {
		return testutil.MetricSum(t, reg, "nylon_function_executions_total", map[string]string{"function": "counter"})
	}
	rejected := func() float64 {
		return testutil.MetricSum(t, reg, "nylon_function_rejected_total", map[string]string{"function": "counter", "code": "413"})
	}

	// Between 1 MiB and the limit, the limit included: the handler gets
	// the whole body.
	for _, size := range []int{1<<20 + 200_000, limit} {
		resp, b := post(size)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %d bytes with a %d limit: status %d, body %s", size, limit, resp.StatusCode, b)
		}
		if got := resp.Header.Get("X-Body-Length"); got != strconv.Itoa(size) {
			t.Fatalf("POST %d bytes: the handler saw a body of %s bytes", size, got)
		}
	}
	if got := executions(); got != 2 {
		t.Fatalf("executions %v, want 2", got)
	}

	// Above it: the gateway answers 413 itself, the function is not asked.
	resp, b := post(limit + 1)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("POST limit+1: status %d %q, body %s; want a 413 problem", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var p gateway.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != gateway.ProblemTooLarge || !strings.Contains(p.Detail, strconv.Itoa(limit)) {
		t.Fatalf("problem %+v: want payload-too-large naming the route's limit", p)
	}
	if got, rej := executions(), rejected(); got != 2 || rej != 0 {
		t.Fatalf("after the gateway's 413: executions %v, node 413s %v; the request must not reach the node", got, rej)
	}

	// Straight over NATS, the node enforces the same limit: a body at the
	// limit runs; one byte more is refused after decoding, a message over
	// the body limit plus the overhead before it.
	direct := func(size int) error {
		req := request(protocol.PhaseRequestFilter, "")
		inv := protocol.Invocation{Request: protocol.HTTPRequest{Method: "POST", Path: "/big", Body: make([]byte, size)}}
		req.Data = protocol.AppendInvocation(nil, &inv)
		resp, _, err := call(e.nc, "counter", req, 10*time.Second)
		if err == nil && header(t, resp, "X-Body-Length") != strconv.Itoa(size) {
			t.Fatalf("direct %d bytes: the handler saw %s", size, header(t, resp, "X-Body-Length"))
		}
		return err
	}
	if err := direct(limit); err != nil {
		t.Fatalf("direct request with a body at the limit: %v", err)
	}
	for i, size := range []int{limit + 1, limit + protocol.RequestOverhead + 1} {
		err := direct(size)
		if !isServiceError(err, 413) {
			t.Fatalf("direct request with a body of %d bytes: %v, want the node's 413", size, err)
		}
		if !strings.Contains(err.Error(), strconv.Itoa(limit)) {
			t.Fatalf("413 %q does not name the limit %d", err, limit)
		}
		if got := rejected(); got != float64(i+1) {
			t.Fatalf("node 413s %v, want %d", got, i+1)
		}
	}
	if got := executions(); got != 3 {
		t.Fatalf("executions %v, want 3: refused requests must not run", got)
	}
}

// TestAdminBodyLimitBoundedByNATS: a deploy asking for a body limit NATS
// cannot carry (the body plus protocol.RequestOverhead over the server's
// max_payload) is refused with a problem naming both; the largest one that
// fits is accepted.
func TestAdminBodyLimitBoundedByNATS(t *testing.T) {
	a := newAdminEnv(t, nil)
	hello := guest(t, helloDir)
	mp := a.nc.MaxPayload() // testutil's server: 8 MiB
	most := mp - protocol.RequestOverhead

	resp, b := a.deployRaw("/v1/functions/hello?max_body_bytes="+strconv.FormatInt(most+1, 10), hello)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("max_body_bytes over what NATS carries: %d %s, want 400", resp.StatusCode, b)
	}
	p := decode[platform.Problem](t, b)
	if p.Type != platform.ProblemInvalidSpec || p.Option != "max_body_bytes" ||
		!strings.Contains(p.Detail, "max_payload is "+strconv.FormatInt(mp, 10)) || !strings.Contains(p.Detail, "at most "+strconv.FormatInt(most, 10)) {
		t.Fatalf("problem %+v: want invalid-spec on max_body_bytes naming max_payload and the largest limit", p)
	}
	if _, err := a.reg.Get(context.Background(), "hello"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("refused deploy stored something: %v", err)
	}

	resp, b = a.deployRaw("/v1/functions/hello?max_body_bytes="+strconv.FormatInt(most, 10), hello)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("max_body_bytes %d (the most NATS carries): %d %s, want 201", most, resp.StatusCode, b)
	}
	if rec := decode[registry.Record](t, b); rec.Limits.MaxBodyBytes != most {
		t.Fatalf("record limits %+v", rec.Limits)
	}
}

// TestReplyOverMaxPayloadFailsFast: a reply NATS cannot carry (the guest
// wrote a body within its own limits, but over the server's max_payload)
// is answered at once with a micro error 500, not left for the caller's
// timeout, and the node goes on serving.
func TestReplyOverMaxPayloadFailsFast(t *testing.T) {
	const maxPayload = 256 << 10 // the Object Store's 128 KiB chunks still fit
	opts := testutil.NATSOptions(t)
	opts.MaxPayload = maxPayload
	e := newEnvOn(t, testutil.RunNATSWith(t, opts))
	e.deploy(registry.Spec{Name: "counter"}, counterDir)
	e.startNode("n1")

	start := time.Now()
	_, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, "size=300000"), 10*time.Second)
	var se *serviceError
	if !errors.As(err, &se) || se.Code != protocol.ServiceErrInternal || !strings.Contains(se.Desc, strconv.Itoa(maxPayload)) {
		t.Fatalf("reply over max_payload: %v, want micro error 500 naming %d", err, maxPayload)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the error took %v: the caller waited for a timeout", d)
	}
	resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, "size=1000"), 10*time.Second)
	if err != nil || len(body(t, resp)) != 1000 {
		t.Fatalf("a reply that fits after the refused one: %v", err)
	}
}
