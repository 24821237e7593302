package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func embeddedConfig(t *testing.T) Config {
	return Config{
		Env:      "dev",
		Name:     "natsconn-test",
		Embedded: Embedded{Listen: "127.0.0.1:-1", DataDir: t.TempDir(), ServerName: "natsconn-test"},
	}
}

func TestEmbeddedStartsWithJetStream(t *testing.T) {
	cfg := embeddedConfig(t)
	c := mustConnect(t, cfg)
	if c.Server == nil || !c.Embedded() {
		t.Fatal("Server = nil, want the embedded server")
	}
	if !c.Server.JetStreamEnabled() {
		t.Fatal("JetStream not enabled on the embedded server")
	}
	url := c.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":4222") || strings.HasSuffix(url, ":-1") {
		t.Fatalf("ClientURL = %q, want nats://127.0.0.1:<random port>", url)
	}
	if got := c.NC.MaxPayload(); got != DefaultMaxPayload {
		t.Errorf("MaxPayload = %d, want %d", got, DefaultMaxPayload)
	}
	// In process, over a pipe rather than a socket, and without a write
	// timeout (connectInProcess says why).
	if c.NC.Opts.InProcessServer == nil || c.NC.Opts.FlusherTimeout != 0 {
		t.Errorf("in-process = %v, flusher timeout = %v; want in-process without a timeout",
			c.NC.Opts.InProcessServer != nil, c.NC.Opts.FlusherTimeout)
	}

	// The in-process client and a TCP client on ClientURL see each other.
	nc2, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("second client on %s: %v", url, err)
	}
	defer nc2.Close()
	roundTrip(t, c.NC, nc2)
	roundTrip(t, nc2, c.NC)

	// JetStream works and stores in DataDir/jetstream.
	ctx := context.Background()
	kv, err := c.JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "natsconn_test"})
	if err != nil {
		t.Fatalf("create kv: %v", err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("kv put: %v", err)
	}
	if c.JetStream() != c.JetStream() {
		t.Error("JetStream() returned different contexts; want one created once")
	}
	if _, err := os.Stat(filepath.Join(cfg.Embedded.DataDir, "jetstream")); err != nil {
		t.Errorf("store dir: %v", err)
	}
	h := c.Health()
	if !h.Connected || !h.Embedded || !h.JetStream || h.Status != "CONNECTED" || h.URL != url || h.ServerName != "natsconn-test" {
		t.Errorf("Health = %+v", h)
	}
}

func TestEmbeddedCloseDrainsAndStopsServer(t *testing.T) {
	c := mustConnect(t, embeddedConfig(t))
	url := c.ClientURL()

	// A message published just before Close is still delivered: Close drains.
	got := make(chan string, 1)
	if _, err := c.NC.Subscribe("natsconn.test.drain", func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := c.NC.Publish("natsconn.test.drain", []byte("last")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case m := <-got:
		if m != "last" {
			t.Fatalf("got %q, want %q", m, "last")
		}
	default:
		t.Fatal("message published before Close was not delivered")
	}
	if !c.NC.IsClosed() {
		t.Error("connection not closed after Close")
	}
	if c.Server.Running() {
		t.Error("embedded server still running after Close")
	}
	if nc, err := nats.Connect(url, nats.Timeout(time.Second)); err == nil {
		nc.Close()
		t.Errorf("connect to %s after Close succeeded, want refused", url)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if h := c.Health(); h.Connected || h.Status != "CLOSED" {
		t.Errorf("Health after Close = %+v", h)
	}
}

func TestEmbeddedPortTakenFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	cfg := embeddedConfig(t)
	cfg.Embedded.Listen = ln.Addr().String()
	logger, logs := newTestLogger(slog.LevelInfo)
	start := time.Now()
	c, err := Connect(context.Background(), cfg, logger)
	if err == nil {
		_ = c.Close(context.Background())
		t.Fatal("Connect on a taken port succeeded")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error = %q, want it to name the address and the cause", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect took %v to fail, want fast", d)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("server fatal not logged through slog; logs:\n%s", logs)
	}
}

func TestEmbeddedJetStreamFailureIsAnError(t *testing.T) {
	// A regular file where the store directory should be: JetStream cannot start.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := embeddedConfig(t)
	cfg.Embedded.DataDir = file
	c, err := Connect(context.Background(), cfg, nil)
	if err == nil {
		_ = c.Close(context.Background())
		t.Fatal("Connect with an unusable store succeeded")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "JetStream") {
		t.Errorf("error = %q, want it to mention JetStream", err)
	}
}

func TestEmbeddedLogsThroughSlog(t *testing.T) {
	cfg := embeddedConfig(t)
	logger, logs := newTestLogger(slog.LevelDebug)
	c, err := Connect(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	// Notices such as the listen line arrive at debug with the component.
	out := logs.String()
	if !strings.Contains(out, "component=nats-server") || !strings.Contains(out, "Listening for client connections") {
		t.Errorf("server notices missing from slog output:\n%s", out)
	}
}

func TestConnectCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, err := Connect(ctx, embeddedConfig(t), nil)
	if err == nil {
		_ = c.Close(context.Background())
		t.Fatal("Connect with a canceled context succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestConnectValidates(t *testing.T) {
	_, err := Connect(context.Background(), Config{Env: "dev"}, nil)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Connect(no data dir) = %v, want ErrInvalidConfig", err)
	}
}
