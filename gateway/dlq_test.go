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
