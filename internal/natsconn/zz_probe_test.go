package natsconn

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func TestZZProbe(t *testing.T) {
	logger, buf := newTestLogger(slog.LevelDebug)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx, embeddedConfig(t), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	js := c.JetStream()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b", History: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	hz := func(tag string) {
		h := c.Server.Healthz(&server.HealthzOptions{})
		b, _ := json.Marshal(h)
		t.Logf("%s healthz: %s", tag, b)
	}
	hz("before")
	ents, _ := os.ReadDir("/proc/self/fd")
	var old syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old)
	lim := old
	lim.Cur = uint64(len(ents))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err = kv.Put(ctx, "k", []byte("v2"))
	t.Logf("put under limit: %v (%v)", err, time.Since(t0))
	pctx, pc := context.WithTimeout(ctx, 2*time.Second)
	err = kv.Purge(pctx, "k")
	pc()
	t.Logf("purge under limit: %v", err)
	hz("during")
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	hz("after")
	pctx, pc = context.WithTimeout(ctx, 2*time.Second)
	_, err = kv.Put(pctx, "k", []byte("v3"))
	pc()
	t.Logf("put after: %v", err)
	hz("after put")
	st, err := js.Stream(ctx, "KV_b")
	if err == nil {
		b, _ := json.Marshal(st.CachedInfo())
		t.Logf("stream info: %s", b)
	}
	t.Logf("log:\n%s", buf.String())
}
