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
	q := newQuorumLoss(t)

	// One dead letter while the stream is healthy.
	wantStatus(t, get(t, q.srv.URL+"/x"), http.StatusServiceUnavailable)
	eventually(t, func() error { return dlqHolds(q.ctx, q.js, 1) })

	// The stream's leader must be among the servers stopped: a leader that
	// only lost its quorum still takes a core publish (and commits it once
	// a server returns); a stream without a leader drops it.
	moveDLQLeader(q.ctx, t, q.nc, func(leader string) bool { return leader != q.c.Servers[0].Name() })
	q.stopQuorum(t)

	// The WebSocket edge of the same process hands its dead letters to
	// the gateway's writer (StoreDeadLetter): they are kept the same way.
	const during = 5
	for range during {
		wantStatus(t, get(t, q.srv.URL+"/x"), http.StatusServiceUnavailable)
		if !q.gw.StoreDeadLetter(wsLetter(prefix, "chat", protocol.NewRequestID().String(), "event")) {
			t.Fatal("StoreDeadLetter refused a letter")
		}
	}
	time.Sleep(500 * time.Millisecond)
	q.restartQuorum(t)
	q.wantAllStored(t, 1+2*during)
}

// A leader that lost its quorum takes a letter's publish but cannot
// commit it, so the acknowledgement times out; the next attempt of the
// same letter (same message id) is answered "duplicate message id is in
// process" (10158). That answer is not final: once a server returns, the
// first copy commits and a later attempt is acknowledged as its
// duplicate. The writer had counted such letters lost (seen in CI, when a
// publish reached a restarted server's stream first).
func TestDeadLetterInProcessOnALeaderWithoutQuorum(t *testing.T) {
	q := newQuorumLoss(t)
	wantStatus(t, get(t, q.srv.URL+"/x"), http.StatusServiceUnavailable)
	eventually(t, func() error { return dlqHolds(q.ctx, q.js, 1) })

	// The leader stays on the server the gateway talks to, and loses its
	// followers.
	moveDLQLeader(q.ctx, t, q.nc, func(leader string) bool { return leader == q.c.Servers[0].Name() })
	q.stopQuorum(t)
	const during = 3
	for range during {
		if !q.gw.StoreDeadLetter(wsLetter(prefix, "chat", protocol.NewRequestID().String(), "event")) {
			t.Fatal("StoreDeadLetter refused a letter")
		}
	}
	// Past the first attempt's 2 s acknowledgement timeout and a few
	// retries, each answered 10158, well within the leader's ~10 s before
	// it steps down for want of a quorum.
	testutil.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(q.logs.String(), "duplicate message id is in process") {
			return fmt.Errorf("no attempt answered 10158 yet")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	q.restartQuorum(t)
	q.wantAllStored(t, 1+during)
}

// quorumLoss is a gateway with an R3 dead-letter stream on a three-server
// cluster, connected to the first server, whose route /x dead-letters
// every request (no plugin answers).
type quorumLoss struct {
	ctx  context.Context
	c    *testutil.Cluster
	nc   *nats.Conn
	js   jetstream.JetStream
	reg  *prometheus.Registry
	logs *testutil.SyncBuffer
	gw   *gateway.Gateway
	srv  *httptest.Server
}

func newQuorumLoss(t *testing.T) *quorumLoss {
	t.Helper()
	q := &quorumLoss{c: testutil.RunNATSCluster(t, 3), reg: prometheus.NewRegistry(), logs: &testutil.SyncBuffer{}}
	q.nc = testutil.Connect(t, q.c.Servers[0])
	cfg, err := gateway.ParseConfig("test.yaml", []byte(yamlMessaging("")+deadLetterRoute))
	if err != nil {
		t.Fatal(err)
	}
	q.gw, err = gateway.New(*cfg, q.nc, gateway.WithRegisterer(q.reg), gateway.WithReplicas(3),
		gateway.WithLogger(slog.New(slog.NewTextHandler(q.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	q.ctx = ctx
	if err := q.gw.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	q.srv = httptest.NewServer(q.gw)
	t.Cleanup(func() {
		q.srv.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = q.gw.Close(cctx)
	})
	q.js = testutil.JetStream(t, q.nc)
	return q
}

// stopQuorum stops the second and third server: the stream stores nothing
// until one returns.
func (q *quorumLoss) stopQuorum(t *testing.T) {
	t.Helper()
	for _, i := range []int{1, 2} {
		q.c.Servers[i].Shutdown()
		q.c.Servers[i].WaitForShutdown()
	}
}

func (q *quorumLoss) restartQuorum(t *testing.T) {
	t.Helper()
	q.c.Start(t, 1)
	q.c.Start(t, 2)
	q.c.WaitReady(t)
}

func (q *quorumLoss) lost(t *testing.T) float64 {
	t.Helper()
	return testutil.MetricSum(t, q.reg, "plugins_messaging_dlq_lost_total", nil)
}

// wantAllStored waits until the stream holds exactly want letters (each
// once: a retried letter is not stored twice), and fails if any was
// counted or logged lost.
func (q *quorumLoss) wantAllStored(t *testing.T, want int) {
	t.Helper()
	testutil.Eventually(t, 45*time.Second, 50*time.Millisecond, func() error { return dlqHolds(q.ctx, q.js, want) })
	if got := q.lost(t); got != 0 {
		t.Fatalf("plugins_messaging_dlq_lost_total = %v, want 0; log:\n%s", got, q.logs.String())
	}
	if strings.Contains(q.logs.String(), "dead letter lost") {
		t.Fatalf("a dead letter was reported lost:\n%s", q.logs.String())
	}
}

// moveDLQLeader steps the dev dead-letter stream's leader down until
// want accepts the server that leads it.
func moveDLQLeader(ctx context.Context, t *testing.T, nc *nats.Conn, want func(leader string) bool) {
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
		case want(info.Cluster.Leader):
			return nil
		}
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+name, nil, 2*time.Second); err != nil {
			return fmt.Errorf("step down %s on %s: %w", name, info.Cluster.Leader, err)
		}
		return fmt.Errorf("stream %s led by %s; stepped down", name, info.Cluster.Leader)
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
