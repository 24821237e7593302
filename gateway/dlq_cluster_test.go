package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
)

// Dead letters are made when something is broken, often when NATS itself
// is: a server lost, a stream electing a leader. One the dead-letter
// stream cannot store right now (here: two of three servers down, so the
// R3 stream has no quorum) is kept and stored once it can, not dropped
// while the log says "dead-lettered". Found by killing the stream leader's
// server under load: every dead letter of the next ~2 s was missing.
func TestDeadLettersSurviveStreamWithoutQuorum(t *testing.T) {
	c := testutil.RunNATSCluster(t, 3)
	nc := testutil.Connect(t, c.Servers[0])
	reg := prometheus.NewRegistry()
	logs := &testutil.SyncBuffer{}
	cfg, err := gateway.ParseConfig("test.yaml", []byte(yamlMessaging("")+`
plugins:
  - name: nobody
    messaging: nats
    per_phase:
      request_filter: {timeout_ms: 200}
routes:
  - {path: /x, upstream: "http://127.0.0.1:1", plugins: [nobody]}
`))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(*cfg, nc, gateway.WithRegisterer(reg), gateway.WithReplicas(3),
		gateway.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		srv.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = gw.Close(cctx)
	})
	js := testutil.JetStream(t, nc)

	// One dead letter while the stream is healthy.
	wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	eventually(t, func() error { return dlqHolds(ctx, js, 1) })

	// Lose the quorum: the stream stores nothing until a server returns.
	for _, i := range []int{1, 2} {
		c.Servers[i].Shutdown()
		c.Servers[i].WaitForShutdown()
	}
	const during = 5
	for range during {
		wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	}
	time.Sleep(500 * time.Millisecond)
	c.Start(t, 1)
	c.Start(t, 2)
	c.WaitReady(t)

	testutil.Eventually(t, 45*time.Second, 50*time.Millisecond, func() error { return dlqHolds(ctx, js, 1+during) })
	if got := testutil.MetricSum(t, reg, "plugins_messaging_dlq_lost_total", nil); got != 0 {
		t.Fatalf("plugins_messaging_dlq_lost_total = %v, want 0", got)
	}
	if strings.Contains(logs.String(), "dead letter lost") {
		t.Fatalf("a dead letter was reported lost:\n%s", logs.String())
	}
}

// dlqHolds reports an error unless the dev dead-letter stream holds want
// dead letters.
func dlqHolds(ctx context.Context, js jetstream.JetStream, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	dls, err := gateway.ListDLQ(ctx, js, prefix, 100)
	if err != nil {
		return err
	}
	if len(dls) != want {
		return fmt.Errorf("%d dead letters stored, want %d", len(dls), want)
	}
	return nil
}
