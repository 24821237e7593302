package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// The dead-letter writer gives up where retrying cannot help. A stream's
// own answer (here: full under discard new) is final: the letter is
// counted lost at once, not after 30 s of retries that hold a worker. A
// stream that answers nothing and cannot be re-created (here: deleted,
// and its name taken by the stream of another prefix, "dev", which the
// writer must not take over) is retried, but Close waits for it at most
// 5 s, so it cannot take a shutdown's whole budget.
func TestDeadLetterWriterGivesUp(t *testing.T) {
	e := newEnv(t)
	gw, srv := e.gateway(yamlMessaging("") + deadLetterRoute)
	ctx := t.Context()
	js := testutil.JetStream(t, e.nc)
	name := gateway.DLQStreamName(prefix)
	holdOneLetter(t, js)
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
	if _, err := gateway.EnsureDLQ(ctx, js, "dev", gateway.DLQConfig{}, 1); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := gw.Close(cctx)
	if took := time.Since(start); err == nil || !errors.Is(err, context.DeadlineExceeded) || took > 20*time.Second {
		t.Fatalf("Close with a letter the stream cannot take: %v after %v; want the writer's own deadline within seconds", err, took)
	}
	if err := lost(2)(); err != nil {
		t.Fatal(err)
	}
	logs := e.log.String()
	if !strings.Contains(logs, "was not re-created") || !strings.Contains(logs, gateway.ErrDLQConflict.Error()) {
		t.Errorf("the failed re-creation is not logged with its cause (ErrDLQConflict):\n%s", logs)
	}
	other, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if c, st := other.CachedInfo().Config, other.CachedInfo().State; !slices.Equal(c.Subjects, []string{"dev.dlq.>"}) || st.Msgs != 0 {
		t.Errorf("the other prefix's stream %s: subjects %v, %d messages; want dev.dlq.> and none", name, c.Subjects, st.Msgs)
	}
}

// A dead-letter stream deleted while the gateway runs (`nats stream rm`, a
// wiped JetStream store) is made again by the next dead letter, with the
// configured limits, and keeps that letter: before, every letter was
// retried for 30 s and lost until the gateway restarted. Letters failing
// together (the four workers all finding no stream) re-create it once,
// logged once at WARN with the stream's name.
func TestDeadLetterStreamRecreated(t *testing.T) {
	e := newEnv(t)
	_, srv := e.gateway(yamlMessaging(`    dlq: {max_msgs: 50, max_age_hours: 2}
`) + deadLetterRoute)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js := testutil.JetStream(t, e.nc)
	name := gateway.DLQStreamName(prefix)

	wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	eventually(t, func() error { return dlqHolds(ctx, js, 1) })
	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}

	// Requests at once, so that the workers find the stream missing
	// together.
	const n = 8
	results := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/x")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					err = fmt.Errorf("status %d, want 503", resp.StatusCode)
				}
			}
			results <- err
		})
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 20*time.Second, 20*time.Millisecond, func() error { return dlqHolds(ctx, js, n) })

	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; !slices.Equal(c.Subjects, []string{prefix + ".dlq.>"}) || c.MaxMsgs != 50 || c.MaxAge != 2*time.Hour {
		t.Errorf("re-created stream: subjects %v, max_msgs %d, max_age %s; want %s.dlq.>, 50, 2h from the config",
			c.Subjects, c.MaxMsgs, c.MaxAge, prefix)
	}
	dls, err := gateway.ListDLQ(ctx, js, prefix, 100)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[protocol.RequestID]bool{}
	for _, d := range dls {
		ids[d.RequestID] = true
		if d.Function != "nobody" || d.Phase != protocol.PhaseRequestFilter || d.Plugin != "nobody" || d.Kind != "NoResponder" {
			t.Errorf("dead letter %d: function %q phase %s plugin %q kind %q; want nobody request_filter nobody NoResponder",
				d.Sequence, d.Function, d.Phase, d.Plugin, d.Kind)
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct request ids among %d letters, want %d", len(ids), len(dls), n)
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_dlq_lost_total", nil); got != 0 {
		t.Errorf("plugins_messaging_dlq_lost_total = %v, want 0", got)
	}
	logs := e.log.String()
	var recreated []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "dead-letter stream re-created") {
			recreated = append(recreated, line)
		}
	}
	if len(recreated) != 1 || !strings.Contains(recreated[0], "level=WARN") || !strings.Contains(recreated[0], "stream="+name) {
		t.Errorf("want one WARN naming stream=%s for the re-creation, got %q", name, recreated)
	}
	if strings.Contains(logs, "dead letter lost") {
		t.Errorf("a dead letter was reported lost:\n%s", logs)
	}
}

// holdOneLetter makes the prefix's dead-letter stream keep one letter and
// refuse the next ones (discard new), as a stream that cannot store does.
func holdOneLetter(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	s, err := js.Stream(t.Context(), gateway.DLQStreamName(prefix))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Discard, cfg.MaxMsgs = jetstream.DiscardNew, 1
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}

// Letters a stream refuses one after another (full under discard new, as
// a stream that cannot store would) are each counted lost, and logged as
// a bounded number of "gateway: dead letter lost" lines per subject with
// summaries counting the rest: a JetStream outage under load must not
// flood the log with one ERROR per request.
func TestDeadLettersLostAreSampled(t *testing.T) {
	e := newEnv(t)
	_, srv := e.gateway(yamlMessaging("") + deadLetterRoute)
	ctx := t.Context()
	js := testutil.JetStream(t, e.nc)
	holdOneLetter(t, js)
	wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	eventually(t, func() error { return dlqHolds(ctx, js, 1) }) // full from here on

	const lost = 40
	start := time.Now()
	for range lost {
		wantStatus(t, get(t, srv.URL+"/x"), http.StatusServiceUnavailable)
	}
	eventually(t, func() error {
		got, err := testutil.GatherSum(e.reg, "plugins_messaging_dlq_lost_total", nil)
		if err == nil && got != lost {
			err = fmt.Errorf("dlq_lost_total = %v, want %d", got, lost)
		}
		return err
	})
	burst := time.Since(start)

	suppressedN := regexp.MustCompile(`suppressed=(\d+)`)
	testutil.WaitSampled(t, "gateway: dead letter lost", lost, burst, func() testutil.SampledLines {
		var n testutil.SampledLines
		for line := range strings.Lines(e.log.String()) {
			if !strings.Contains(line, `msg="gateway: dead letter lost"`) {
				continue
			}
			var count *int
			if m := suppressedN.FindStringSubmatch(line); m != nil {
				c, _ := strconv.Atoi(m[1])
				count = &c
			}
			n.Add(count)
		}
		return n
	})
}
