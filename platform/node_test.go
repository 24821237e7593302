package platform_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
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

func TestNodeServesFunction(t *testing.T) {
	e := newEnv(t)
	rec := e.deploy(registry.Spec{Name: "hello", Description: "says hello"}, helloDir)
	e.startNode("n1")

	req := request(protocol.PhaseRequestFilter, "name=nats")
	req.SessionID = 42
	resp, msg, err := call(e.nc, "hello", req, 5*time.Second)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if resp.Action != protocol.ActionEnd {
		t.Errorf("action = %v, want End (error %q)", resp.Action, resp.Error)
	}
	if resp.RequestID != req.RequestID || resp.SessionID != 42 || resp.Version != protocol.Version {
		t.Errorf("reply envelope = %+v, want request_id %v and session_id 42 echoed", resp, req.RequestID)
	}
	if got := msg.Header.Get(protocol.HeaderTraceparent); !strings.HasPrefix(got, "00-0af7651916cd43dd") {
		t.Errorf("traceparent not echoed: %q", got)
	}
	if got := body(t, resp); got != `{"message":"hello, nats"}` {
		t.Errorf("body = %q", got)
	}

	info := serviceInfos(t, e.nc, "hello", 1)[0]
	if info.Version != "1.0.1" || info.Description != "says hello" {
		t.Errorf("version, description = %q, %q", info.Version, info.Description)
	}
	for k, want := range map[string]string{
		platform.MetaNodeID: "n1", platform.MetaSHA256: rec.SHA256, platform.MetaEnv: "dev",
		platform.MetaDeploymentVersion: "1", platform.MetaPlatform: "nylon", platform.MetaPhases: "request_filter",
	} {
		if got := info.Metadata[k]; got != want {
			t.Errorf("metadata[%s] = %q, want %q", k, got, want)
		}
	}
	if len(info.Endpoints) != 1 || info.Endpoints[0].Subject != "nylon.dev.hello.request_filter" ||
		info.Endpoints[0].QueueGroup != "hello" || info.Endpoints[0].Name != "request_filter" {
		t.Errorf("endpoints = %+v", info.Endpoints)
	}
	// Every level of micro discovery answers: $SRV.PING, .name, .name.id.
	for _, subject := range []string{"$SRV.PING", "$SRV.PING.hello", "$SRV.PING.hello." + info.ID} {
		m, err := e.nc.Request(subject, nil, 2*time.Second)
		if err != nil || !strings.Contains(string(m.Data), `"io.nats.micro.v1.ping_response"`) {
			t.Errorf("%s: %v %s", subject, err, m.Data)
		}
	}
}

func TestTwoNodesShareLoadAndSwap(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Config: map[string]string{"label": "v1"}}, counterDir)
	e.startNode("n1")
	e.startNode("n2")

	const total = 300
	var failed atomic.Int64
	parallel(total, 16, func(int) {
		if resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second); err != nil || resp.Action != protocol.ActionEnd {
			failed.Add(1)
		}
	})
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d requests failed", n)
	}
	stats := serviceStats(t, e.nc, "counter", 2)
	sum := 0
	nodes := map[string]int{}
	for _, s := range stats {
		nodes[s.Metadata[platform.MetaNodeID]] = s.Endpoints[0].NumRequests
		sum += s.Endpoints[0].NumRequests
	}
	if sum != total || nodes["n1"] == 0 || nodes["n2"] == 0 {
		t.Fatalf("requests per node = %v (sum %d), want both nodes serving %d in all", nodes, sum, total)
	}

	// A deploy reaches both nodes and both swap to it.
	e.deploy(registry.Spec{Name: "counter", Config: map[string]string{"label": "v2"}}, counterDir)
	waitVersion(t, e.nc, "counter", 2, "1.0.2")
	labels := map[string]int{}
	for range 40 {
		resp, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		labels[header(t, resp, "X-Label")]++
	}
	if labels["v2"] != 40 {
		t.Fatalf("labels after the swap = %v, want only v2", labels)
	}
}

// waitVersion waits until `instances` instances of service name report
// version, and no other.
func waitVersion(t *testing.T, nc *nats.Conn, name string, instances int, version string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		infos := serviceInfos(t, nc, name, instances)
		ok := true
		for _, info := range infos {
			ok = ok && info.Version == version
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s not at version %s on %d instances: %+v", name, version, instances, infos)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWebSocketEvents(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "chat"}, "functions/examples/chat")
	e.startNode("n1")

	info := serviceInfos(t, e.nc, "chat", 1)[0]
	if len(info.Endpoints) != 1 || info.Endpoints[0].Subject != "nylon.dev.ws.chat.events" || info.Endpoints[0].Name != "events" {
		t.Fatalf("endpoints = %+v, want the events subject", info.Endpoints)
	}
	inv := protocol.Invocation{
		Request: protocol.HTTPRequest{Method: "GET", Path: "/chat", Query: "room=r1&name=ana"},
		WS:      &protocol.WSEvent{Kind: protocol.WSOpen, ConnectionID: "c1"},
	}
	req := protocol.PluginRequest{Version: protocol.Version, RequestID: protocol.NewRequestID(), Phase: protocol.PhaseEvent,
		Data: protocol.AppendInvocation(nil, &inv)}
	resp, _, err := call(e.nc, "chat", req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := protocol.DecodeOps(resp.Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Action == protocol.ActionError || !slices.ContainsFunc(ops, func(op protocol.Op) bool {
		return op.Code == protocol.OpWSJoinRoom && op.Key == "r1"
	}) {
		t.Fatalf("reply %v %q, ops %+v: want a join of room r1", resp.Action, resp.Error, ops)
	}

	// An events request without an event is a decode error.
	req.RequestID = protocol.NewRequestID()
	req.Data = protocol.AppendInvocation(nil, &protocol.Invocation{})
	if _, _, err := call(e.nc, "chat", req, 5*time.Second); !isServiceError(err, 400) {
		t.Fatalf("events request without ws: %v, want a 400 micro error", err)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "hello"}, helloDir)
	e.startNode("n1", withConfig(func(c *platform.Config) { c.PayloadLimits.Default = 4096 }))
	subject := protocol.PhaseSubject("nylon.dev", "hello", protocol.PhaseRequestFilter)

	m, err := e.nc.Request(subject, []byte("not msgpack"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Nats-Service-Error-Code") != "400" || !strings.Contains(m.Header.Get("Nats-Service-Error"), "decode") {
		t.Errorf("garbage: headers %v, want a 400 naming the decode error", m.Header)
	}

	big := request(protocol.PhaseRequestFilter, "")
	inv := protocol.Invocation{Request: protocol.HTTPRequest{Method: "POST", Body: make([]byte, 8192)}}
	big.Data = protocol.AppendInvocation(nil, &inv)
	if _, _, err := call(e.nc, "hello", big, 5*time.Second); !isServiceError(err, 413) {
		t.Errorf("8 KiB request with a 4 KiB limit: %v, want 413", err)
	}

	wrong := request(protocol.PhaseLogging, "")
	m, err = e.nc.Request(subject, wrong.AppendMsgpack(nil), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Nats-Service-Error-Code") != "400" {
		t.Errorf("phase mismatch: headers %v, want 400", m.Header)
	}

	// A request of a newer protocol version that this node can still read
	// is served (with a warning in the log).
	newer := request(protocol.PhaseRequestFilter, "")
	newer.Version = protocol.Version + 1
	if resp, _, err := call(e.nc, "hello", newer, 5*time.Second); err != nil || resp.Action != protocol.ActionEnd {
		t.Errorf("newer version: %v %+v, want served", err, resp)
	}
}

func isServiceError(err error, code int) bool {
	var se *serviceError
	return errors.As(err, &se) && se.Code == code
}

func TestStartRejectsBadConfigAndTwice(t *testing.T) {
	if _, err := platform.NewNode(platform.Config{}); !errors.Is(err, platform.ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "NATS") || !strings.Contains(err.Error(), "Registry") {
		t.Errorf("empty config: %v, want ErrInvalidConfig naming NATS and Registry", err)
	}
	e := newEnv(t)
	if _, err := platform.NewNode(platform.Config{NATS: e.nc, Registry: e.reg, NodeID: "a.b", QueueLength: -1, MaxConcurrentLoads: -1}); !errors.Is(err, platform.ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "NodeID") || !strings.Contains(err.Error(), "QueueLength") || !strings.Contains(err.Error(), "MaxConcurrentLoads") {
		t.Errorf("bad fields: %v", err)
	}
	n := e.startNode("n1")
	if err := n.Start(context.Background()); !errors.Is(err, platform.ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Drain(ctx); err != nil {
		t.Errorf("second Drain: %v", err)
	}
	select {
	case <-n.Done():
	default:
		t.Error("Done not closed after Drain")
	}
	if err := n.Start(ctx); !errors.Is(err, platform.ErrDrained) {
		t.Errorf("Start after Drain: %v, want ErrDrained", err)
	}
}

func TestMetricsRegistryIsPerNode(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	e.startNode("n1", withMetrics(reg))
	// A second node on the same registry would double-register.
	n, err := platform.NewNode(platform.Config{NATS: e.nc, Registry: e.reg, Host: e.host, Metrics: reg, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer n.Drain(ctx)
	if err := n.Start(ctx); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Fatalf("second node on one registry: %v, want a registration error", err)
	}
}

// A control request ($SRV.PING|INFO|STATS) without a reply subject is
// ignored, not a WARN line per message and function served: a loop
// publishing $SRV.PING without a reply would otherwise fill every node's
// log.
func TestControlRequestsWithoutReplyAreQuiet(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "hello"}, helloDir)
	var logs testutil.SyncBuffer
	e.startNode("n1", withConfig(func(c *platform.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}))
	subjects := []string{"$SRV.PING", "$SRV.INFO.hello", "$SRV.STATS.hello"}
	for range 20 {
		for _, s := range subjects {
			if err := e.nc.Publish(s, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A subscription handles its messages in order: once these are
	// answered, the ones without a reply subject have been handled.
	for _, s := range subjects {
		if _, err := e.nc.Request(s, nil, 5*time.Second); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if n := strings.Count(logs.String(), "answer control request"); n != 0 {
		t.Fatalf("%d log lines for control requests without a reply subject, want none:\n%s", n, logs.String())
	}
}

// A traceparent header too long to be one is ignored: not echoed (nor kept
// with the queued request, nor logged). Headers are outside the payload
// limits, so a request could otherwise hold megabytes of node memory per
// message while it waits, past PayloadLimits.
func TestOversizedTraceparentIsIgnored(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "hello"}, helloDir)
	e.startNode("n1")
	const valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []struct{ sent, want string }{
		{valid, valid},
		{valid + "-" + strings.Repeat("a", 200), valid + "-" + strings.Repeat("a", 200)}, // a later version's fields
		{strings.Repeat("a", 64<<10), ""},
	} {
		_, msg, err := callWith(e.nc, "hello", request(protocol.PhaseRequestFilter, ""),
			nats.Header{protocol.HeaderTraceparent: []string{tc.sent}}, 5*time.Second)
		if err != nil {
			t.Fatalf("traceparent of %d bytes: %v", len(tc.sent), err)
		}
		if got := msg.Header.Get(protocol.HeaderTraceparent); got != tc.want {
			t.Errorf("traceparent of %d bytes: reply echoes %d bytes, want %d", len(tc.sent), len(got), len(tc.want))
		}
	}
}
