package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The cluster helper is what the cluster tests of other packages stand on:
// a replicated stream must keep taking writes when a server goes away.
func TestRunNATSClusterReplicates(t *testing.T) {
	c := RunNATSCluster(t, 3)
	nc, err := nats.Connect(c.ClientURLs(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("a")); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream info %+v (%v): want a leader and two replicas", info, err)
	}
	c.Stop(t, 0)
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		// Each attempt has a deadline of its own: one that waits for an
		// acknowledgement from a stream leader that is gone would
		// otherwise use up the whole context.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := js.Publish(actx, "t.2", []byte("b"), jetstream.WithMsgID("t.2"))
		return err
	})
	info, err = s.Info(ctx)
	if err != nil || info.State.Msgs != 2 {
		t.Fatalf("after a server stopped: %+v (%v), want 2 messages", info, err)
	}
}
