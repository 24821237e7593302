package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// A subscription that falls behind counts one slow-consumer episode,
// however many messages it drops, and its drops count as nats.go counts
// them; they stay counted once the subscription is gone.
func TestEventsCountSlowConsumerAndDrops(t *testing.T) {
	s := testutil.RunNATS(t)
	c := mustConnect(t, externalConfig(s.ClientURL()))
	if got := c.Events().Counts(); got != (EventCounts{}) {
		t.Fatalf("Counts before anything happened = %+v, want zeros", got)
	}
	sub := testutil.SlowSubscriber(t, c.NC, testutil.Connect(t, s), "natsconn.test.slow", "", 10)

	var dropped int
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		n, err := sub.Dropped()
		if err != nil {
			return err
		}
		// One in the handler, at most two pending: the rest dropped.
		if n < 7 {
			return fmt.Errorf("subscription dropped %d, want 7 or more", n)
		}
		dropped = n
		if got := c.Events().Counts(); got.SlowConsumers != 1 || got.DroppedMsgs != uint64(n) {
			return fmt.Errorf("Counts = %+v, want 1 slow consumer and %d dropped", got, n)
		}
		return nil
	})
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	// The first read after the close finds the subscription gone, the
	// second has only what was kept of it.
	for i := range 2 {
		if got := c.Events().Counts(); got.SlowConsumers != 1 || got.DroppedMsgs != uint64(dropped) || got.Disconnects != 0 {
			t.Errorf("Counts #%d after unsubscribing = %+v, want 1 slow consumer, %d dropped, no disconnect", i+1, got, dropped)
		}
	}
}

// A lost connection counts one disconnect, and the reconnect after it one
// reconnect; closing the connection is not a disconnect.
func TestEventsCountDisconnects(t *testing.T) {
	s := testutil.RunNATS(t)
	proxy := testutil.StartTCPProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	c := mustConnect(t, externalConfig("nats://"+proxy.Addr()))

	proxy.Cut()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if c.NC.IsConnected() {
			return errors.New("still connected after the cut")
		}
		if got := c.Events().Counts().Disconnects; got != 1 {
			return fmt.Errorf("Disconnects = %d, want 1", got)
		}
		return nil
	})
	proxy.Restore(t)
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !c.NC.IsConnected() {
			return errors.New("not reconnected")
		}
		if got := c.Events().Counts().Reconnects; got != 1 {
			return fmt.Errorf("Reconnects = %d, want 1", got)
		}
		return nil
	})
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Close returns once the closed callback ran, which nats.go runs after
	// the disconnect callback of the close.
	if got := c.Events().Counts().Disconnects; got != 1 {
		t.Errorf("Disconnects after Close = %d, want still 1", got)
	}
}

// Events on a connection dialled without Connect (a gateway messaging
// config's own) log and count its slow consumers as Connect's do.
func TestEventsOnAnotherConnection(t *testing.T) {
	s := testutil.RunNATS(t)
	log, logs := newTestLogger(slog.LevelInfo)
	ev := NewEvents(log.With("messaging", "partners"))
	nc := testutil.Connect(t, s, ev.Options()...)
	testutil.SlowSubscriber(t, nc, testutil.Connect(t, s), "natsconn.test.other", "", 10)
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := ev.Counts(); got.SlowConsumers != 1 || got.DroppedMsgs < 7 {
			return fmt.Errorf("Counts = %+v, want 1 slow consumer and 7 or more dropped", got)
		}
		if out := logs.String(); !strings.Contains(out, "nats slow consumer, messages dropped") || !strings.Contains(out, "messaging=partners") {
			return errors.New("no slow consumer logged with the connection's attributes:\n" + out)
		}
		return nil
	})
}

// Behind a proxy that accepts connections while its server is down (a load
// balancer, a Kubernetes service in front of a restarting pod), every
// reconnect attempt gets a TCP connection and fails the NATS handshake.
// nats.go's Stats().Reconnects counts each such attempt; Events counts a
// reconnect only once the connection is back.
func TestEventsCountReconnectsNotAttempts(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.JetStream = false
	s := testutil.RunNATSWith(t, opts)
	port := s.Addr().(*net.TCPAddr).Port
	proxy := testutil.StartTCPProxy(t, s.Addr().String())
	c := mustConnect(t, externalConfig("nats://"+proxy.Addr())) // 50 ms between attempts

	s.Shutdown()
	s.WaitForShutdown()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		// Several attempts reached the proxy and failed the handshake.
		if n := c.NC.Stats().Reconnects; n < 3 {
			return fmt.Errorf("nats.go counted %d reconnect attempts, waiting for 3", n)
		}
		return nil
	})
	if c.NC.IsConnected() {
		t.Fatal("connected with the server down")
	}
	if got := c.Events().Counts(); got.Disconnects != 1 || got.Reconnects != 0 {
		t.Fatalf("Counts with the server down = %+v, want 1 disconnect and no reconnect", got)
	}

	opts = testutil.NATSOptions(t)
	opts.JetStream, opts.Port = false, port
	testutil.RunNATSWith(t, opts)
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !c.NC.IsConnected() {
			return errors.New("not reconnected")
		}
		if got := c.Events().Counts(); got.Disconnects != 1 || got.Reconnects != 1 {
			return fmt.Errorf("Counts once back = %+v, want 1 disconnect and 1 reconnect", got)
		}
		return nil
	})
}
