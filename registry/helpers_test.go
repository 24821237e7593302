package registry_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// quiet keeps housekeeping logs out of test output.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newRegistry starts an embedded JetStream server and opens a registry on it.
func newRegistry(t *testing.T, opts ...registry.Option) (*registry.Registry, jetstream.JetStream) {
	t.Helper()
	s := testutil.RunNATS(t)
	js := testutil.JetStream(t, testutil.Connect(t, s))
	reg, err := registry.New(t.Context(), js, append([]registry.Option{registry.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	return reg, js
}

func spec(name string) registry.Spec {
	return registry.Spec{
		Name:   name,
		Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter, protocol.PhaseLogging),
		Routes: []string{"/" + name},
	}
}

// wasm returns distinct, deterministic module bytes per tag. The registry
// stores already validated bytes, so they need not be a real module.
func wasm(tag string) []byte {
	return append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte(tag), 64)...)
}

func deploy(t *testing.T, reg *registry.Registry, s registry.Spec, mod []byte) registry.Record {
	t.Helper()
	rec, err := reg.Deploy(t.Context(), s, mod)
	if err != nil {
		t.Fatalf("deploy %s: %v", s.Name, err)
	}
	return rec
}

func modules(t *testing.T, js jetstream.JetStream, reg *registry.Registry) jetstream.ObjectStore {
	t.Helper()
	obs, err := js.ObjectStore(t.Context(), registry.ModulesBucket(reg.Env()))
	if err != nil {
		t.Fatalf("object store: %v", err)
	}
	return obs
}

// objectExists reports whether the modules bucket holds sha.
func objectExists(t *testing.T, obs jetstream.ObjectStore, sha string) bool {
	t.Helper()
	_, err := obs.GetInfo(t.Context(), sha)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("object %s: %v", sha, err)
	}
	return true
}

func versionNumbers(recs []registry.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Version
	}
	return out
}

func requireErrorIs(t *testing.T, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %q is not %v", err, target)
		}
	}
}

// nextEvent waits for the watcher's next event. The timeout only turns a hang
// into a failure; it is not part of what is asserted.
func nextEvent(t *testing.T, w *registry.Watcher) registry.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Updates():
		if !ok {
			t.Fatalf("watcher closed, want an event")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatalf("no event after 5s")
	}
	return registry.Event{}
}

// newJetStream returns a JetStream context on a fresh embedded server.
func newJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	return testutil.JetStream(t, testutil.Connect(t, testutil.RunNATS(t)))
}
