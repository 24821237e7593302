package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// A subscription that falls behind (nats.go drops what is over its pending
// limits) is logged once at WARN with its subject, queue group and pending
// counts: a node's endpoint whose callers time out for it is found in the
// log.
func TestSlowConsumerIsLogged(t *testing.T) {
	s := testutil.RunNATS(t)
	log, logs := newTestLogger(slog.LevelInfo)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := Connect(ctx, externalConfig(s.ClientURL()), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	release := make(chan struct{})
	sub, err := c.NC.QueueSubscribe("natsconn.test.slow", "workers", func(*nats.Msg) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	defer close(release)
	if err := sub.SetPendingLimits(2, -1); err != nil {
		t.Fatal(err)
	}
	pub := testutil.Connect(t, s)
	if err := c.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := pub.Publish("natsconn.test.slow", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		out := logs.String()
		for _, want := range []string{"level=WARN", "nats slow consumer, messages dropped", "subject=natsconn.test.slow", "queue=workers", "pending_msgs="} {
			if !strings.Contains(out, want) {
				return errors.New("log has no " + want + ":\n" + out)
			}
		}
		return nil
	})
}
