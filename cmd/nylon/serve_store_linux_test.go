package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/internal/natsconn"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/registry"
)

// TestServeHealthReportsStoppedStore stops the registry's stream the way the
// open-file probe did (the embedded server failed a write to its store) and
// checks /healthz says so: degraded, naming the stream, 503 with ?strict=1.
// The stream stays stopped after the cause is gone, so /healthz keeps
// saying it. RLIMIT_FSIZE 0 makes the write fail (EFBIG) in this process,
// which runs serve and its embedded server.
func TestServeHealthReportsStoppedStore(t *testing.T) {
	b := startCmd(t, serveArgs(t)...)
	b.waitLine(t, readyLine)
	admin, natsURL := b.waitLine(t, adminLine), b.waitLine(t, natsLine)
	if code, h := getProcessHealth(t, admin); code != http.StatusOK || h.Status != platform.HealthOK ||
		h.JetStream == nil || h.JetStream.Status != natsconn.StoreOK {
		t.Fatalf("/healthz before = %d %+v %+v, want ok", code, h.Health, h.JetStream)
	}
	wantStoreMetric(t, admin, "ok")

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("connect %s: %v", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := registry.FunctionsStream("dev")
	kv, err := js.KeyValue(context.Background(), strings.TrimPrefix(stream, "KV_"))
	if err != nil {
		t.Fatalf("registry bucket: %v", err)
	}
	testutil.FailFileWrites(t, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		if _, err := kv.Put(ctx, "store-probe", []byte("x")); err == nil {
			t.Fatal("put succeeded while the process could not write files")
		}
	})

	var h processHealth
	testutil.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		var code int
		code, h = getProcessHealth(t, admin)
		if code != http.StatusOK || h.Status != platform.HealthDegraded || h.JetStream == nil || h.JetStream.Status != natsconn.StoreFailing {
			return fmt.Errorf("/healthz = %d %s %+v, want 200 degraded with jetstream failing", code, h.Status, h.JetStream)
		}
		return nil
	})
	if got := strings.Join(h.JetStream.Errors, "\n"); !strings.Contains(got, "'$G > "+stream+"' write error") {
		t.Errorf("jetstream.errors = %q, want %s's write error", got, stream)
	}
	if code, _ := httpGet(t, admin+"/healthz?strict=1"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz?strict=1 = %d, want 503", code)
	}
	wantStoreMetric(t, admin, "failing")
}

// wantStoreMetric checks /metrics has the nylon_jetstream_store state set
// with status 1 and the other two 0.
func wantStoreMetric(t *testing.T, admin, status string) {
	t.Helper()
	code, body := httpGet(t, admin+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, s := range []string{natsconn.StoreOK, natsconn.StoreFailing, natsconn.StoreUnknown} {
		v := "0"
		if s == status {
			v = "1"
		}
		if line := `nylon_jetstream_store{status="` + s + `"} ` + v; !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
