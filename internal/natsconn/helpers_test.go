package natsconn

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
)

func newTestLogger(level slog.Level) (*slog.Logger, *testutil.SyncBuffer) {
	b := &testutil.SyncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}

// mustConnect connects with cfg and closes the Conn when the test ends.
func mustConnect(t *testing.T, cfg Config) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := Connect(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// roundTrip checks that a request over nc reaches a responder on nc2.
func roundTrip(t *testing.T, nc, nc2 *nats.Conn) {
	t.Helper()
	sub, err := nc2.Subscribe("natsconn.test.echo", func(m *nats.Msg) { _ = m.Respond(append([]byte("echo:"), m.Data...)) })
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc2.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	msg, err := nc.Request("natsconn.test.echo", []byte("hi"), 5*time.Second)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if got := string(msg.Data); got != "echo:hi" {
		t.Fatalf("reply = %q, want %q", got, "echo:hi")
	}
}
