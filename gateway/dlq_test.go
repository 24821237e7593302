package gateway_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
)

// On a cluster the dead-letter stream gets the gateway's replicas when it
// is created; later gateways keep what the stream has (an operator may have
// scaled it), unless the messaging config names its replicas.
func TestEnsureDLQReplicas(t *testing.T) {
	c := testutil.RunNATSCluster(t, 3)
	nc, err := nats.Connect(c.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	replicas := func(cfg gateway.DLQConfig, def int) int {
		t.Helper()
		s, err := gateway.EnsureDLQ(ctx, js, "nylon.prod", cfg, def)
		if err != nil {
			t.Fatalf("EnsureDLQ(%+v, %d): %v", cfg, def, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.MaxMsgs != max(cfg.MaxMsgs, gateway.DefaultDLQMaxMsgs) {
			t.Errorf("max_msgs %d, want %d", info.Config.MaxMsgs, max(cfg.MaxMsgs, gateway.DefaultDLQMaxMsgs))
		}
		return info.Config.Replicas
	}
	if r := replicas(gateway.DLQConfig{}, 3); r != 3 {
		t.Fatalf("created with %d replicas, want the gateway's 3", r)
	}
	// A gateway started without the cluster's setting does not shrink it,
	// and still applies the rest of its config.
	if r := replicas(gateway.DLQConfig{MaxMsgs: 500_000}, 1); r != 3 {
		t.Fatalf("after a gateway with replicas 1: %d replicas, want 3 kept", r)
	}
	if r := replicas(gateway.DLQConfig{Replicas: 1}, 3); r != 1 {
		t.Fatalf("dlq.replicas 1: %d replicas, want 1", r)
	}
}

// The dead-letter stream is bounded in bytes too (1 GiB unless
// dlq.max_bytes says otherwise): a dead letter holds the whole request, so
// failing requests must not be able to fill the JetStream store.
func TestEnsureDLQMaxBytes(t *testing.T) {
	nc := testutil.Connect(t, testutil.RunNATS(t))
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := gateway.EnsureDLQ(ctx, js, "nylon.dev", gateway.DLQConfig{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxBytes; got != gateway.DefaultDLQMaxBytes {
		t.Fatalf("default max_bytes %d, want %d", got, gateway.DefaultDLQMaxBytes)
	}
	const limit = 16 << 10
	s, err = gateway.EnsureDLQ(ctx, js, "nylon.dev", gateway.DLQConfig{MaxBytes: limit}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := js.Publish(ctx, "nylon.dev.dlq.fn.request_filter", make([]byte, 1024)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > limit || info.State.Msgs == 0 || info.State.LastSeq != 40 {
		t.Fatalf("stream holds %d bytes in %d messages (last seq %d), want at most %d bytes, oldest dropped",
			info.State.Bytes, info.State.Msgs, info.State.LastSeq, limit)
	}
}

// Two subject prefixes can map to one stream name ("x" and "nylon.x" are
// both NYLON_DLQ_X). The second must not take the first one's stream:
// EnsureDLQ, Start and ListDLQ refuse it, naming the stream, the subjects
// it holds and the prefix asking, and the first keeps its dead letters.
func TestDLQPrefixCollision(t *testing.T) {
	nc := testutil.Connect(t, testutil.RunNATS(t))
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ first, second, stream string }{
		{"x", "nylon.x", "NYLON_DLQ_X"},
		{"nylon.y", "y", "NYLON_DLQ_Y"},
		{"a.b", "a_b", "NYLON_DLQ_A_B"},
		{"acme", "Acme", "NYLON_DLQ_ACME"},
	} {
		t.Run(tc.first+"/"+tc.second, func(t *testing.T) {
			if a, b := gateway.DLQStreamName(tc.first), gateway.DLQStreamName(tc.second); a != tc.stream || b != tc.stream {
				t.Fatalf("DLQStreamName(%q) = %s, DLQStreamName(%q) = %s, want both %s", tc.first, a, tc.second, b, tc.stream)
			}
			if _, err := gateway.EnsureDLQ(ctx, js, tc.first, gateway.DLQConfig{}, 1); err != nil {
				t.Fatal(err)
			}
			firstSubject := tc.first + ".dlq.fn.request_filter"
			if _, err := js.Publish(ctx, firstSubject, []byte("first")); err != nil {
				t.Fatalf("publish %s: %v", firstSubject, err)
			}
			wantErr := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, gateway.ErrDLQConflict) {
					t.Fatalf("%s: %v, want ErrDLQConflict", what, err)
				}
				for _, s := range []string{tc.stream, `"` + tc.first + `.dlq.>"`, `"` + tc.second + `"`, "nats stream rm " + tc.stream} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: %q does not name %s", what, err, s)
					}
				}
			}

			_, err := gateway.EnsureDLQ(ctx, js, tc.second, gateway.DLQConfig{MaxMsgs: 10}, 1)
			wantErr("EnsureDLQ "+tc.second, err)
			s, err := js.Stream(ctx, tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.CachedInfo().Config
			if want := []string{tc.first + ".dlq.>"}; !slices.Equal(cfg.Subjects, want) || cfg.MaxMsgs != gateway.DefaultDLQMaxMsgs {
				t.Fatalf("after EnsureDLQ %s: subjects %v, max_msgs %d, want %v and %d unchanged",
					tc.second, cfg.Subjects, cfg.MaxMsgs, want, gateway.DefaultDLQMaxMsgs)
			}
			// The first prefix's dead letters are still kept.
			if _, err := js.Publish(ctx, firstSubject, []byte("first again")); err != nil {
				t.Fatalf("publish %s after the collision: %v", firstSubject, err)
			}

			// A gateway on the second prefix refuses to start, as for any
			// other EnsureDLQ failure.
			gw, err := gateway.New(gateway.Config{}, nc, gateway.WithSubjectPrefix(tc.second))
			if err != nil {
				t.Fatal(err)
			}
			wantErr("Start "+tc.second, gw.Start(ctx))
			if err := gw.Close(ctx); err != nil {
				t.Fatal(err)
			}

			// nylon dlq ls of the second prefix does not show the first's
			// stream; the first's lists its own.
			_, err = gateway.ListDLQ(ctx, js, tc.second, 10)
			wantErr("ListDLQ "+tc.second, err)
			dls, err := gateway.ListDLQ(ctx, js, tc.first, 10)
			if err != nil || len(dls) != 2 || dls[0].Subject != firstSubject {
				t.Fatalf("ListDLQ %s = %+v, %v, want its 2 dead letters", tc.first, dls, err)
			}
		})
	}
}

// A stream that holds its own prefix's subjects is updated as before, and
// keeps its messages; a missing one is still ErrStreamNotFound to ListDLQ.
func TestEnsureDLQUpdatesOwnStream(t *testing.T) {
	nc := testutil.Connect(t, testutil.RunNATS(t))
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := gateway.ListDLQ(ctx, js, "nylon.x", 10); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("ListDLQ before any gateway: %v, want ErrStreamNotFound", err)
	}
	if _, err := gateway.EnsureDLQ(ctx, js, "nylon.x", gateway.DLQConfig{}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "nylon.x.dlq.fn.request_filter", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	s, err := gateway.EnsureDLQ(ctx, js, "nylon.x", gateway.DLQConfig{MaxMsgs: 500, MaxAgeHours: 1}, 1)
	if err != nil {
		t.Fatalf("EnsureDLQ of its own stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.Name != "NYLON_DLQ_X" || !slices.Equal(c.Subjects, []string{"nylon.x.dlq.>"}) || c.MaxMsgs != 500 || c.MaxAge != time.Hour {
		t.Fatalf("updated stream %s: subjects %v, max_msgs %d, max_age %s, want nylon.x.dlq.>, 500, 1h", c.Name, c.Subjects, c.MaxMsgs, c.MaxAge)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("updated stream holds %d messages, want the 1 it had", info.State.Msgs)
	}
	if dls, err := gateway.ListDLQ(ctx, js, "nylon.x", 10); err != nil || len(dls) != 1 {
		t.Fatalf("ListDLQ = %d dead letters, %v, want 1", len(dls), err)
	}
}

// A prefix's own stream with a subject added by hand is refused (a gateway
// does not take the operator's subject away), but the error must not advise
// removing the stream, which would delete this environment's dead letters:
// it says to restore the subjects.
func TestDLQOwnStreamEditedByHand(t *testing.T) {
	nc := testutil.Connect(t, testutil.RunNATS(t))
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := gateway.EnsureDLQ(ctx, js, "nylon.x", gateway.DLQConfig{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "nylon.x.dlq.fn.request_filter", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, "audit.>")
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, ensureErr := gateway.EnsureDLQ(ctx, js, "nylon.x", gateway.DLQConfig{}, 1)
	_, listErr := gateway.ListDLQ(ctx, js, "nylon.x", 10)
	for what, err := range map[string]error{"EnsureDLQ": ensureErr, "ListDLQ": listErr} {
		if !errors.Is(err, gateway.ErrDLQConflict) {
			t.Fatalf("%s of a stream edited by hand: %v, want ErrDLQConflict", what, err)
		}
		if msg := err.Error(); strings.Contains(msg, "stream rm") || !strings.Contains(msg, "nats stream edit NYLON_DLQ_X --subjects 'nylon.x.dlq.>'") {
			t.Errorf("%s: %q; want advice to restore the subjects, not to remove the stream", what, msg)
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Config.Subjects, []string{"nylon.x.dlq.>", "audit.>"}) || info.State.Msgs != 1 {
		t.Fatalf("stream after the refusals: subjects %v, %d messages; want both subjects and the 1 message", info.Config.Subjects, info.State.Msgs)
	}
}
