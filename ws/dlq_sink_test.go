package ws_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

// With a dead-letter sink (in nylon serve, the gateway's writer, which
// stores with acknowledged JetStream publishes) the edge hands its dead
// letters to the sink instead of a core publish, which the server drops
// while the stream has no leader. The sink gets a copy of the request:
// the connection's buffer is reused by the close event that follows. A
// letter the sink refuses is lost: logged and counted.
func TestDeadLetterSink(t *testing.T) {
	s := testutil.RunNATS(t)
	rs := respond(t, s, "flaky", false, func(ev *event) answer {
		if strings.HasPrefix(string(ev.inv.WS.Payload), "micro") {
			return answer{serviceErr: "500"}
		}
		return echo(ev)
	})
	// Nothing may reach the subject by a core publish.
	core := subscribeSync(t, s, protocol.DLQSubject(prefix, "flaky", protocol.PhaseEvent))

	// fail makes one connection's message event fail (a micro error,
	// dead-lettered as Internal) and waits until its close event, which
	// reuses the request buffer, has been sent. The message is longer than
	// the close event, so the close event's request overwrites its buffer.
	failing := "micro " + strings.Repeat("x", 200)
	fail := func(t *testing.T, env *edgeEnv) {
		t.Helper()
		cl := dial(t, env.url("")).read()
		cl.send(failing)
		if code, _ := cl.waitClosed(); code != websocket.StatusInternalError {
			t.Fatalf("close = %d, want 1011", code)
		}
		testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
			if env.edge.Stats().Connections != 0 {
				return errors.New("connection still open")
			}
			return nil
		})
		if n := len(rs.seen(protocol.WSClose, "")); n == 0 {
			t.Fatal("no close event sent after the failed message")
		}
	}

	t.Run("accepted", func(t *testing.T) {
		got := make(chan *nats.Msg, 4)
		env := startEdgeWith(t, s, ws.Config{}, "flaky", nil, ws.WithDeadLetterSink(func(m *nats.Msg) bool {
			got <- m
			return true
		}))
		fail(t, env)
		var dl *nats.Msg
		select {
		case dl = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("the sink got no dead letter")
		}
		if want := protocol.DLQSubject(prefix, "flaky", protocol.PhaseEvent); dl.Subject != want {
			t.Errorf("subject %q, want %q", dl.Subject, want)
		}
		var req protocol.PluginRequest
		var inv protocol.Invocation
		if err := protocol.DecodeRequest(dl.Data, &req); err != nil {
			t.Fatalf("dead letter data: %v", err)
		}
		if err := protocol.DecodeInvocation(req.Data, &inv); err != nil || inv.WS.Kind != protocol.WSText || string(inv.WS.Payload) != failing {
			t.Fatalf("dead letter is not the failed event (a buffer reused by the close event?): %v %s %.20q", err, inv.WS.Kind, inv.WS.Payload)
		}
		for h, want := range map[string]string{
			ws.HeaderErrorKind:    "Internal",
			ws.HeaderAttempts:     "1",
			ws.HeaderRequestID:    req.RequestID.String(),
			ws.HeaderConnectionID: inv.WS.ConnectionID,
			protocol.HeaderEnv:    "dev",
		} {
			if v := dl.Header.Get(h); v != want {
				t.Errorf("header %s = %q, want %q", h, v, want)
			}
		}
		if dl.Header.Get(ws.HeaderError) == "" || dl.Header.Get(protocol.HeaderTraceparent) == "" {
			t.Errorf("dead letter without error or traceparent: %v", dl.Header)
		}
		if m, err := core.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("dead letter also core-published: %v", m.Header)
		}
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_dead_letters_total", nil); got != 1 {
			t.Errorf("nylon_ws_dead_letters_total = %v, want 1", got)
		}
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_dead_letters_lost_total", nil); got != 0 {
			t.Errorf("nylon_ws_dead_letters_lost_total = %v, want 0", got)
		}
	})

	t.Run("refused", func(t *testing.T) {
		logs := &testutil.SyncBuffer{}
		calls := make(chan struct{}, 4)
		env := startEdgeWith(t, s, ws.Config{}, "flaky", nil,
			ws.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
			ws.WithDeadLetterSink(func(*nats.Msg) bool {
				calls <- struct{}{}
				return false
			}))
		fail(t, env)
		if len(calls) != 1 {
			t.Fatalf("sink called %d times, want 1", len(calls))
		}
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_dead_letters_lost_total", nil); got != 1 {
			t.Errorf("nylon_ws_dead_letters_lost_total = %v, want 1", got)
		}
		if got := testutil.MetricSum(t, env.reg, "nylon_ws_dead_letters_total", nil); got != 0 {
			t.Errorf("nylon_ws_dead_letters_total = %v, want 0", got)
		}
		if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, `msg="ws dead letter lost"`) {
			t.Errorf("no ERROR \"ws dead letter lost\" record:\n%s", out)
		}
		if m, err := core.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("refused dead letter core-published: %v", m.Header)
		}
	})

	t.Run("nil sink", func(t *testing.T) {
		nc := testutil.Connect(t, s)
		if _, err := ws.New(ws.Config{}, nc, ws.WithDeadLetterSink(nil)); !errors.Is(err, ws.ErrInvalidConfig) {
			t.Fatalf("New with a nil sink: %v, want ErrInvalidConfig", err)
		}
	})
}
