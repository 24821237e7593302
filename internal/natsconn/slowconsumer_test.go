package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

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

	testutil.SlowSubscriber(t, c.NC, testutil.Connect(t, s), "natsconn.test.slow", "workers", 10)
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
