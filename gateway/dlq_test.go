package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
)

// On a cluster the dead-letter stream gets the gateway's replicas when it
// is created; later gateways keep what the stream has (an operator may have
// scaled it), unless the messaging config names its replicas.
func TestEnsureDLQReplicas(t *testing.T) {
	c := testutil.RunNATSCluster(t, 3)
	nc, err := nats.Connect(c.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replicas := func(cfg gateway.DLQConfig, def int) int {
		t.Helper()
		s, err := gateway.EnsureDLQ(ctx, js, "nylon.prod", cfg, def)
		if err != nil {
			t.Fatalf("EnsureDLQ(%+v, %d): %v", cfg, def, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.MaxMsgs != max(cfg.MaxMsgs, gateway.DefaultDLQMaxMsgs) {
			t.Errorf("max_msgs %d, want %d", info.Config.MaxMsgs, max(cfg.MaxMsgs, gateway.DefaultDLQMaxMsgs))
		}
		return info.Config.Replicas
	}
	if r := replicas(gateway.DLQConfig{}, 3); r != 3 {
		t.Fatalf("created with %d replicas, want the gateway's 3", r)
	}
	// A gateway started without the cluster's setting does not shrink it,
	// and still applies the rest of its config.
	if r := replicas(gateway.DLQConfig{MaxMsgs: 500_000}, 1); r != 3 {
		t.Fatalf("after a gateway with replicas 1: %d replicas, want 3 kept", r)
	}
	if r := replicas(gateway.DLQConfig{Replicas: 1}, 3); r != 1 {
		t.Fatalf("dlq.replicas 1: %d replicas, want 1", r)
	}
}

// The dead-letter stream is bounded in bytes too (1 GiB unless
// dlq.max_bytes says otherwise): a dead letter holds the whole request, so
// failing requests must not be able to fill the JetStream store.
func TestEnsureDLQMaxBytes(t *testing.T) {
	nc := testutil.Connect(t, testutil.RunNATS(t))
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := gateway.EnsureDLQ(ctx, js, "nylon.dev", gateway.DLQConfig{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxBytes; got != gateway.DefaultDLQMaxBytes {
		t.Fatalf("default max_bytes %d, want %d", got, gateway.DefaultDLQMaxBytes)
	}
	const limit = 16 << 10
	s, err = gateway.EnsureDLQ(ctx, js, "nylon.dev", gateway.DLQConfig{MaxBytes: limit}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := js.Publish(ctx, "nylon.dev.dlq.fn.request_filter", make([]byte, 1024)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > limit || info.State.Msgs == 0 || info.State.LastSeq != 40 {
		t.Fatalf("stream holds %d bytes in %d messages (last seq %d), want at most %d bytes, oldest dropped",
			info.State.Bytes, info.State.Msgs, info.State.LastSeq, limit)
	}
}
