package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
)

// The dead-letter writer gives up where retrying cannot help. A stream's
// own answer (here: full under discard new) is final: the letter is
// counted lost at once, not after 30 s of retries that hold a worker. A
// stream that answers nothing (deleted) is retried, but Close waits for it
// at most 5 s, so it cannot take a shutdown's whole budget.
func TestDeadLetterWriterGivesUp(t *testing.T) {
	e := newEnv(t)
	gw, srv := e.gateway(yamlMessaging("") + `
plugins:
  - name: nobody
    messaging: nats
    per_phase:
      request_filter: {timeout_ms: 200}
routes:
  - {path: /x, upstream: "http://127.0.0.1:1", plugins: [nobody]}
`)
	ctx := t.Context()
	js := testutil.JetStream(t, e.nc)
	name := gateway.DLQStreamName(prefix)
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Discard, cfg.MaxMsgs = jetstream.DiscardNew, 1
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	lost := func(want float64) func() error {
		return func() error {
			got, err := testutil.GatherSum(e.reg, "plugins_messaging_dlq_lost_total", nil)
			if err == nil && got != want {
				err = fmt.Errorf("dlq_lost_total = %v, want %v", got, want)
			}
			return err
		}
	}

	wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	eventually(t, func() error { return dlqHolds(ctx, js, 1) }) // the stream is full now
	wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	eventually(t, lost(1)) // within 5 s; a retried letter is lost after 30
	if !strings.Contains(e.log.String(), "maximum messages exceeded") {
		t.Errorf("the loss is not logged with the stream's answer:\n%s", e.log.String())
	}

	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err = gw.Close(cctx)
	if took := time.Since(start); err == nil || !errors.Is(err, context.DeadlineExceeded) || took > 20*time.Second {
		t.Fatalf("Close with a letter the stream cannot take: %v after %v; want the writer's own deadline within seconds", err, took)
	}
	if err := lost(2)(); err != nil {
		t.Fatal(err)
	}
}
