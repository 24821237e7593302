package natsconn

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// putFails checks that a put to kv gets no acknowledgement.
func putFails(t *testing.T, kv jetstream.KeyValue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	if _, err := kv.Put(ctx, "k", []byte("lost")); err == nil {
		t.Fatal("put succeeded, want no acknowledgement from the stopped stream")
	}
}

func put(t *testing.T, kv jetstream.KeyValue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("put to %s: %v", kv.Bucket(), err)
	}
}

func createKV(t *testing.T, c *Conn, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := c.JetStream().CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: bucket})
	if err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	return kv
}

// storeFailing polls c.StoreHealth until it is failing for want (in Errors
// when fromServer, else in WriteErrors).
func storeFailing(t *testing.T, c *Conn, stream string, fromServer bool) StoreHealth {
	t.Helper()
	var h StoreHealth
	testutil.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		h = c.StoreHealth(context.Background())
		if h.Status != StoreFailing {
			return fmt.Errorf("status %q, want %q: %+v", h.Status, StoreFailing, h)
		}
		if fromServer && !strings.Contains(strings.Join(h.Errors, "\n"), "'$G > "+stream+"' write error") {
			return fmt.Errorf("errors do not name %s: %+v", stream, h)
		}
		for _, we := range h.WriteErrors {
			if we.Stream == stream {
				return nil
			}
		}
		return fmt.Errorf("no write error of %s: %+v", stream, h)
	})
	return h
}

// A stream whose store failed a write stays stopped after the cause is gone
// (nats-server keeps the error until it restarts); StoreHealth reports it
// from the embedded server's own health check and from the failed write,
// and a restart on the same store recovers it.
func TestStoreHealthEmbeddedStreamStoppedByWriteError(t *testing.T) {
	cfg := embeddedConfig(t)
	c, err := Connect(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	reg, other := createKV(t, c, "reg"), createKV(t, c, "other")
	put(t, reg)
	if h := c.StoreHealth(context.Background()); h.Status != StoreOK || len(h.Errors)+len(h.WriteErrors) > 0 {
		t.Fatalf("StoreHealth before = %+v, want ok", h)
	}

	testutil.FailFileWrites(t, func() { putFails(t, reg) })
	putFails(t, reg) // the cause is gone, the stream stays stopped
	put(t, other)    // other streams go on
	h := storeFailing(t, c, "KV_reg", true)
	if len(h.WriteErrors) != 1 || !strings.Contains(h.Errors[0], "file too large") {
		t.Errorf("StoreHealth = %+v, want the store's error and one failed stream", h)
	}
	if _, err := reg.Get(context.Background(), "k"); err != nil {
		t.Errorf("get from the stopped stream: %v (reads go on)", err)
	}

	// The remedy: restart the server on the same store.
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c2 := mustConnect(t, cfg)
	reg2, err := c2.JetStream().KeyValue(context.Background(), "reg")
	if err != nil {
		t.Fatalf("open bucket after restart: %v", err)
	}
	put(t, reg2)
	if h := c2.StoreHealth(context.Background()); h.Status != StoreOK {
		t.Errorf("StoreHealth after restart = %+v, want ok", h)
	}
}

// With an external server only the failed writes show the stopped stream;
// an acknowledged write to it, after the server restarted, clears it.
func TestStoreHealthExternalWriteErrors(t *testing.T) {
	opts := testutil.NATSOptions(t)
	s := testutil.RunNATSWith(t, opts)
	c := mustConnect(t, Config{Env: DevEnv, URLs: []string{s.ClientURL()}, ReconnectWait: 20 * time.Millisecond})
	reg, other := createKV(t, c, "reg"), createKV(t, c, "other")
	put(t, reg)

	testutil.FailFileWrites(t, func() { putFails(t, reg) })
	put(t, other) // acknowledged writes to other streams clear nothing
	h := storeFailing(t, c, "KV_reg", false)
	if len(h.Errors) != 0 || len(h.WriteErrors) != 1 {
		t.Errorf("StoreHealth = %+v, want only KV_reg's write error", h)
	}

	// Restart the server on the same store and port; the client reconnects.
	opts.Port = s.Addr().(*net.TCPAddr).Port
	s.Shutdown()
	s.WaitForShutdown()
	testutil.RunNATSWith(t, opts)
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !c.NC.IsConnected() {
			return fmt.Errorf("not reconnected")
		}
		return nil
	})
	put(t, reg)
	if h := c.StoreHealth(context.Background()); h.Status != StoreOK || len(h.WriteErrors) != 0 {
		t.Errorf("StoreHealth after an acknowledged write = %+v, want ok", h)
	}
}
