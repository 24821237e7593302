package ws_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/ws"
)

// Events failing on every connection (a node answering 500) log a bounded
// number of "ws event dead-lettered" and "ws event failed, closing
// connection" lines (10 a second each for the subject)
// and summaries whose suppressed counts add up to the rest, the last
// within a few seconds; the metric counts every letter. Before, every
// dead letter was a WARN line.
func TestDeadLetterLinesAreSampled(t *testing.T) {
	s := testutil.RunNATS(t)
	respond(t, s, "flaky", false, func(ev *event) answer {
		if strings.HasPrefix(string(ev.inv.WS.Payload), "micro") {
			return answer{serviceErr: "500"}
		}
		return echo(ev)
	})
	var logs testutil.SyncBuffer
	env := startEdgeWith(t, s, ws.Config{}, "flaky", nil, ws.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))

	const total = 40
	start := time.Now()
	for range total {
		cl := dial(t, env.url("")).read()
		cl.send("micro")
		if code, _ := cl.waitClosed(); code != websocket.StatusInternalError {
			t.Fatalf("close = %d, want 1011", code)
		}
	}
	burst := time.Since(start)

	// Each failed event logs two lines, both sampled per subject: the
	// failure that closes the connection and the dead letter.
	for _, want := range []struct{ msg, level, subject string }{
		{"ws event dead-lettered", "WARN", "nylon.dev.dlq.flaky.events"},
		{"ws event failed, closing connection", "ERROR", "nylon.dev.ws.flaky.events"},
	} {
		testutil.WaitSampled(t, want.msg, total, burst, func() testutil.SampledLines {
			return testutil.SampledJSON(t, logs.Bytes(), want.msg, want.level, want.subject)
		})
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_dead_letters_total", nil); got != total {
		t.Errorf("nylon_ws_dead_letters_total = %v, want every letter (%d)", got, total)
	}
}
