package registry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/registry"
)

func TestWatchInitialStateThenChangesInOrder(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := t.Context()
	deploy(t, reg, spec("a"), wasm("a1"))
	deploy(t, reg, spec("b"), wasm("b1"))
	deploy(t, reg, spec("c"), wasm("c1"))
	if err := reg.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}

	w, err := reg.Watch(ctx)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()

	describe := func(ev registry.Event) string {
		switch ev.Type {
		case registry.EventPut:
			if !ev.Record.Active || ev.Record.Name != ev.Name {
				t.Errorf("put event record = %+v", ev.Record)
			}
			return fmt.Sprintf("put %s v%d", ev.Name, ev.Record.Version)
		case registry.EventDelete:
			return "delete " + ev.Name
		}
		return ev.Type.String()
	}
	var lastRev uint64
	expect := func(want ...string) {
		t.Helper()
		for _, w1 := range want {
			ev := nextEvent(t, w)
			if got := describe(ev); got != w1 {
				t.Fatalf("event = %q, want %q", got, w1)
			}
			if ev.Type != registry.EventReady {
				if ev.Revision <= lastRev {
					t.Fatalf("revision %d after %d: out of order", ev.Revision, lastRev)
				}
				lastRev = ev.Revision
			}
		}
	}

	// c was deleted before the watch began: not part of the current state.
	expect("put a v1", "put b v1", "ready")

	deploy(t, reg, spec("a"), wasm("a2"))
	expect("put a v2")
	deploy(t, reg, spec("b"), wasm("b2"))
	expect("put b v2")
	if _, err := reg.Rollback(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	expect("put a v1")
	if err := reg.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	expect("delete b")
	deploy(t, reg, spec("c"), wasm("c2"))
	expect("put c v2")

	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	for ev := range w.Updates() {
		t.Fatalf("event after stop: %+v", ev)
	}
}

func TestWatchEmptyAndCancel(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != registry.EventReady {
		t.Fatalf("first event on an empty registry = %v, want ready", ev.Type)
	}
	deploy(t, reg, spec("late"), wasm("late"))
	if ev := nextEvent(t, w); ev.Type != registry.EventPut || ev.Name != "late" {
		t.Fatalf("event = %+v, want put late", ev)
	}
	cancel()
	for range w.Updates() {
	}
	// Closed: the range above ended. Stop after the context ended is fine.
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
}

// When the KV watch underneath ends (nats.go gave up on its consumer), the
// Watcher reopens it and sends what changed meanwhile as ordinary events:
// the reader sees one stream, with no second EventReady.
func TestWatchReopensAndSendsWhatItMissed(t *testing.T) {
	reg, _ := newRegistry(t)
	release := make(chan struct{})
	registry.HoldWatchReopen(reg, release)
	ctx := t.Context()
	for _, name := range []string{"a", "b", "c"} {
		deploy(t, reg, spec(name), wasm(name+"1"))
	}
	w, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var lastRev uint64
	expect := func(want ...string) {
		t.Helper()
		for _, w1 := range want {
			ev := nextEvent(t, w)
			got := ev.Type.String() + " " + ev.Name
			if ev.Type == registry.EventPut {
				got += fmt.Sprintf(" v%d", ev.Record.Version)
			}
			if got != w1 {
				t.Fatalf("event = %q, want %q", got, w1)
			}
			if ev.Type != registry.EventReady {
				if ev.Revision <= lastRev {
					t.Fatalf("%s: revision %d after %d", got, ev.Revision, lastRev)
				}
				lastRev = ev.Revision
			}
		}
	}
	expect("put a v1", "put b v1", "put c v1", "ready ")

	registry.EndKVWatch(w)
	// While no watch is open: a changes, b goes, d comes, e comes and goes
	// (the reader never knew it), c stays as it was.
	deploy(t, reg, spec("a"), wasm("a2"))
	if err := reg.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	deploy(t, reg, spec("d"), wasm("d1"))
	deploy(t, reg, spec("e"), wasm("e1"))
	if err := reg.Delete(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.Updates():
		t.Fatalf("event %+v while no KV watch is open", ev)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	expect("put a v2", "delete b", "put d v1")

	// Then changes arrive live again.
	deploy(t, reg, spec("c"), wasm("c2"))
	expect("put c v2")
}

// Stop ends a Watcher that is waiting to reopen its KV watch.
func TestWatchStopWhileReopening(t *testing.T) {
	reg, _ := newRegistry(t)
	registry.HoldWatchReopen(reg, make(chan struct{}))
	w, err := reg.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != registry.EventReady {
		t.Fatalf("first event %+v, want ready", ev)
	}
	registry.EndKVWatch(w)
	done := make(chan struct{})
	go func() { _ = w.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return while the watcher waited to reopen")
	}
	if _, ok := <-w.Updates(); ok {
		t.Fatal("Updates still open after Stop")
	}
}

// A watch whose consumer is gone (its server went away) delivers nothing
// and nats.go notices only after 10 to 20 s of missing heartbeats. The
// Watcher sees the bucket move past it and reopens the watch sooner.
func TestWatchBehindItsBucketIsReopened(t *testing.T) {
	reg, js := newRegistry(t)
	registry.CheckWatchesEvery(reg, 50*time.Millisecond)
	ctx := t.Context()
	deploy(t, reg, spec("a"), wasm("a1"))
	w, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, want := range []registry.EventType{registry.EventPut, registry.EventReady} {
		if ev := nextEvent(t, w); ev.Type != want {
			t.Fatalf("event %+v, want %v", ev, want)
		}
	}

	stream, err := js.Stream(ctx, registry.FunctionsStream(reg.Env()))
	if err != nil {
		t.Fatal(err)
	}
	names := stream.ConsumerNames(ctx)
	deleted := 0
	for name := range names.Name() {
		if err := stream.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if names.Err() != nil || deleted == 0 {
		t.Fatalf("deleted %d consumers (%v), want the watch's", deleted, names.Err())
	}
	deploy(t, reg, spec("a"), wasm("a2"))
	if ev := nextEvent(t, w); ev.Type != registry.EventPut || ev.Record.Version != 2 {
		t.Fatalf("event %+v, want put a v2", ev)
	}
	// The reopened watch sends only that change.
	select {
	case ev := <-w.Updates():
		t.Fatalf("event %+v after the missed change", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

// A watch that ends because the process's connection drains (serve shutting
// down, before it stops its watchers) is not an operator's problem: its
// failed reopen is logged at DEBUG, not ERROR.
func TestWatchReopenOnADrainingConnectionIsQuiet(t *testing.T) {
	s := testutil.RunNATS(t)
	nc := testutil.Connect(t, s)
	var logs testutil.SyncBuffer
	reg, err := registry.New(t.Context(), testutil.JetStream(t, nc),
		registry.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	w, err := reg.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	if ev := nextEvent(t, w); ev.Type != registry.EventReady {
		t.Fatalf("first event %+v, want ready", ev)
	}
	// Drain the connection with a subscription still open, so the drain
	// lasts long enough for the watcher to try again on it.
	if _, err := nc.Subscribe("hold.drain", func(*nats.Msg) { time.Sleep(2 * time.Second) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("hold.drain", nil); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	if err := nc.Drain(); err != nil {
		t.Fatal(err)
	}
	registry.EndKVWatch(w)
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "registry: reopen watch") {
			return errors.New("no reopen attempt logged yet")
		}
		return nil
	})
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "reopen watch") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("reopen on a draining connection logged above DEBUG: %s", line)
		}
	}
}

// Stop returns at once while NATS is down: stopping the KV watch deletes
// its consumer, a JetStream request that cannot be answered before the
// connection is back, and a node's drain or a gateway's shutdown during an
// outage waited that request's timeout (5 s) for nothing.
func TestWatchStopWhileNATSIsDown(t *testing.T) {
	s := testutil.RunNATS(t)
	js := testutil.JetStream(t, testutil.Connect(t, s, nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour)))
	reg, err := registry.New(t.Context(), js, registry.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	w, err := reg.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != registry.EventReady {
		t.Fatalf("first event %+v, want ready", ev)
	}
	s.Shutdown()
	deadline := time.Now().Add(5 * time.Second)
	for js.Conn().IsConnected() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if js.Conn().IsConnected() {
		t.Fatal("the connection did not notice the server went away")
	}
	start := time.Now()
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop took %v while NATS was down, want it at once", d)
	}
}
