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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
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

	// The stream's leader must be among the servers stopped: a leader that
	// only lost its quorum still takes a core publish (and commits it once
	// a server returns); a stream without a leader drops it.
	leaderAway(ctx, t, nc, c.Servers[0].Name())

	// Lose the quorum: the stream stores nothing until a server returns.
	for _, i := range []int{1, 2} {
		c.Servers[i].Shutdown()
		c.Servers[i].WaitForShutdown()
	}
	// The WebSocket edge of the same process hands its dead letters to
	// the gateway's writer (StoreDeadLetter): they are kept the same way.
	const during = 5
	for range during {
		wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
		if !gw.StoreDeadLetter(wsLetter(prefix, "chat", protocol.NewRequestID().String(), "event")) {
			t.Fatal("StoreDeadLetter refused a letter")
		}
	}
	time.Sleep(500 * time.Millisecond)
	c.Start(t, 1)
	c.Start(t, 2)
	c.WaitReady(t)

	testutil.Eventually(t, 45*time.Second, 50*time.Millisecond, func() error { return dlqHolds(ctx, js, 1+2*during) })
	if got := testutil.MetricSum(t, reg, "plugins_messaging_dlq_lost_total", nil); got != 0 {
		t.Fatalf("plugins_messaging_dlq_lost_total = %v, want 0", got)
	}
	if strings.Contains(logs.String(), "dead letter lost") {
		t.Fatalf("a dead letter was reported lost:\n%s", logs.String())
	}
}

// leaderAway moves the dev dead-letter stream's leadership off the server
// named keep, and waits until another server leads it.
func leaderAway(ctx context.Context, t *testing.T, nc *nats.Conn, keep string) {
	t.Helper()
	name := gateway.DLQStreamName(prefix)
	js := testutil.JetStream(t, nc)
	testutil.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		switch {
		case info.Cluster == nil || info.Cluster.Leader == "":
			return fmt.Errorf("stream %s has no leader", name)
		case info.Cluster.Leader != keep:
			return nil
		}
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+name, nil, 2*time.Second); err != nil {
			return fmt.Errorf("step down %s on %s: %w", name, keep, err)
		}
		return fmt.Errorf("stream %s led by %s; stepped down", name, keep)
	})
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
