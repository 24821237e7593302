package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
)

// While the gateway's connection to NATS is down, a call waits for it
// (within its timeout) instead of publishing into nats.go's reconnect
// buffer. Buffered, the requests of an outage reached the node all at once
// when the connection came back, long after their clients had been
// answered 504 and their dead letters written: the node ran every one of
// them, and a replay of the dead letters ran them again.
func TestGatewaySendsNothingIntoAnOutage(t *testing.T) {
	w := newOutageWorld(t)
	wantStatus(t, get(t, w.srv.URL+"/c"), http.StatusOK)

	w.proxy.Cut()
	testutil.Eventually(t, 5*time.Second, 2*time.Millisecond, func() error {
		if w.gwNC.IsConnected() {
			return errors.New("the gateway's connection is still up")
		}
		return nil
	})
	const during = 3
	for range during {
		r := get(t, w.srv.URL+"/c")
		wantStatus(t, r, http.StatusGatewayTimeout)
		if p := r.problem(t); p.Type != gateway.ProblemTimeout {
			t.Fatalf("problem %+v, want %s", p, gateway.ProblemTimeout)
		}
		if r.Elapsed > 5*time.Second {
			t.Fatalf("answered after %v, want about the route's 300ms timeout", r.Elapsed)
		}
	}
	if !strings.Contains(w.logs.String(), "request not sent") {
		t.Errorf("the failures' log lines do not say the request was not sent:\n%s", w.logs.String())
	}

	// A request that arrives during the outage is sent once the
	// connection is back, within its timeout.
	long := make(chan result, 1)
	go func() { long <- get(t, w.srv.URL+"/long") }()
	testutil.Eventually(t, 5*time.Second, 2*time.Millisecond, func() error {
		if n := testutil.MetricSum(t, w.gwReg, "plugins_messaging_inflight", map[string]string{"plugin": "counter"}); n != 1 {
			return fmt.Errorf("%v calls in flight, want the /long one", n)
		}
		return nil
	})
	w.proxy.Restore(t)
	wantStatus(t, <-long, http.StatusOK)
	ok := 2 // the first request and /long

	// The node ran what was answered 200, and none of the requests
	// answered 504: one more request, queued behind anything the
	// reconnect flushed, makes sure the node has seen it all.
	wantStatus(t, get(t, w.srv.URL+"/c"), http.StatusOK)
	ok++
	if n := testutil.MetricSum(t, w.nodeReg, "nylon_function_executions_total", map[string]string{"function": "counter"}); n != float64(ok) {
		t.Fatalf("the node ran %v requests, want the %d answered 200: the %d answered 504 during the outage were sent after it", n, ok, during)
	}
}

// outageWorld is a NATS server holding the registry, a real node serving
// the counter guest on a connection of its own, and a gateway whose
// connection passes through a proxy the test cuts and restores: an outage
// of the gateway's NATS alone, as when its server restarts, while the node
// stays subscribed. Routes: /c (300ms timeout) and /long (10s).
type outageWorld struct {
	proxy   *testutil.TCPProxy
	gwNC    *nats.Conn
	gwReg   *prometheus.Registry
	nodeReg *prometheus.Registry
	logs    *testutil.SyncBuffer
	srv     *httptest.Server
}

func newOutageWorld(t *testing.T) *outageWorld {
	t.Helper()
	s := testutil.RunNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := &outageWorld{gwReg: prometheus.NewRegistry(), nodeReg: prometheus.NewRegistry(), logs: &testutil.SyncBuffer{}}
	phases := startNode(t, testutil.Connect(t, s), w.nodeReg, map[string]string{"counter": "platform/testdata/guests/counter"})["counter"]

	w.proxy = testutil.StartTCPProxy(t, s.Addr().String())
	var err error
	w.gwNC, err = nats.Connect("nats://"+w.proxy.Addr(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.gwNC.Close)
	cfg, err := gateway.ParseConfig("test.yaml", []byte(yamlMessaging("")))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(*cfg, w.gwNC, gateway.WithRegisterer(w.gwReg),
		gateway.WithLogger(slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{
		{Path: "/c", Function: "counter", Phases: phases, Timeout: 300 * time.Millisecond},
		{Path: "/long", Function: "counter", Phases: phases, Timeout: 10 * time.Second},
	}); err != nil {
		t.Fatal(err)
	}
	w.srv = httptest.NewServer(gw)
	t.Cleanup(func() {
		w.srv.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = gw.Close(cctx)
	})
	return w
}
