package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// recorder notes the order of Start and Drain calls across components.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

type fakeComponent struct {
	name     string
	rec      *recorder
	startErr error
	done     chan struct{}
	drainCtx chan context.Context
}

func (f *fakeComponent) Start(context.Context) error {
	f.rec.add("start " + f.name)
	return f.startErr
}

func (f *fakeComponent) Drain(ctx context.Context) error {
	f.rec.add("drain " + f.name)
	if f.drainCtx != nil {
		f.drainCtx <- ctx
	}
	return nil
}

func (f *fakeComponent) Done() <-chan struct{} { return f.done }

func fakeSpec(rec *recorder, name, role string, mut func(*fakeComponent)) componentSpec {
	return componentSpec{name: name, role: role, build: func(context.Context, serveDeps) (component, error) {
		f := &fakeComponent{name: name, rec: rec, done: make(chan struct{})}
		if mut != nil {
			mut(f)
		}
		return f, nil
	}}
}

func serveConfigForTest(t *testing.T, role string) *serveConfig {
	t.Helper()
	cfg := &serveConfig{
		Env: "dev", Data: t.TempDir(), Role: role, DrainTimeout: 5 * time.Second, Replicas: 1,
		NATS: natsFlags{Listen: "127.0.0.1:-1"}, HTTP: "127.0.0.1:0", Admin: "127.0.0.1:0",
		Log: logFlags{Level: "info", Format: "text"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runServeWith runs serve with specs; safe to call from a goroutine.
func runServeWith(ctx context.Context, cfg *serveConfig, specs []componentSpec) (string, error) {
	var out testutil.SyncBuffer
	a := &app{stdout: &out, stderr: io.Discard, getenv: func(string) string { return "" }}
	err := serve(ctx, a, cfg, slog.New(slog.DiscardHandler), specs)
	return out.String(), err
}

func TestServeStartsInOrderAndDrainsInReverse(t *testing.T) {
	rec := &recorder{}
	drainCtx := make(chan context.Context, 1)
	specs := []componentSpec{
		fakeSpec(rec, "node", roleNode, nil),
		fakeSpec(rec, "gateway", roleGateway, func(f *fakeComponent) { f.drainCtx = drainCtx }),
		fakeSpec(rec, "extra", roleGateway, nil),
		fakeSpec(rec, "admin", roleAdmin, nil),
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	cfg := serveConfigForTest(t, "node,gateway")
	go func() {
		_, err := runServeWith(ctx, cfg, specs)
		errc <- err
	}()
	waitEvents(t, rec, 3)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("serve: %v", err)
	}
	want := []string{"start node", "start gateway", "start extra", "drain extra", "drain gateway", "drain node"}
	if got := rec.list(); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	// Drain gets the drain-timeout budget, not the canceled serve context.
	dctx := <-drainCtx
	if dl, ok := dctx.Deadline(); !ok || time.Until(dl) > 5*time.Second {
		t.Errorf("drain context deadline = %v, %v; want within the 5s drain timeout", dl, ok)
	}
}

func TestServeStartFailureDrainsStarted(t *testing.T) {
	rec := &recorder{}
	specs := []componentSpec{
		fakeSpec(rec, "node", roleNode, nil),
		fakeSpec(rec, "gateway", roleGateway, func(f *fakeComponent) { f.startErr = errors.New("boom") }),
		fakeSpec(rec, "admin", roleAdmin, nil),
	}
	out, err := runServeWith(context.Background(), serveConfigForTest(t, "all"), specs)
	if err == nil || !strings.Contains(err.Error(), "component gateway: start: boom") {
		t.Fatalf("serve = %v, want the gateway start error", err)
	}
	want := []string{"start node", "start gateway", "drain node"}
	if got := rec.list(); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if strings.Contains(out, "ready") {
		t.Errorf("printed ready despite a failed start:\n%s", out)
	}
}

// A signal while a component is still starting stops serve cleanly: the
// components already started are drained and serve returns nil (exit 0),
// not the start's "context canceled".
func TestServeInterruptedDuringStartIsAStop(t *testing.T) {
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	specs := []componentSpec{
		fakeSpec(rec, "node", roleNode, nil),
		{name: "gateway", role: roleGateway, build: func(context.Context, serveDeps) (component, error) {
			return startFunc(func(ctx context.Context) error {
				rec.add("start gateway")
				cancel() // the signal, while the gateway waits for JetStream
				<-ctx.Done()
				return fmt.Errorf("waiting for the initial functions: %w", ctx.Err())
			}), nil
		}},
		fakeSpec(rec, "admin", roleAdmin, nil),
	}
	out, err := runServeWith(ctx, serveConfigForTest(t, "all"), specs)
	if err != nil {
		t.Fatalf("serve interrupted during start-up = %v, want nil", err)
	}
	if want := []string{"start node", "start gateway", "drain node"}; !reflect.DeepEqual(rec.list(), want) {
		t.Errorf("events = %v, want %v", rec.list(), want)
	}
	if strings.Contains(out, "ready") || !strings.Contains(out, "stopped") {
		t.Errorf("output:\n%s", out)
	}
}

// startFunc is a component that only starts.
type startFunc func(context.Context) error

func (f startFunc) Start(ctx context.Context) error { return f(ctx) }
func (startFunc) Drain(context.Context) error       { return nil }

func TestServeStopsWhenAComponentDies(t *testing.T) {
	rec := &recorder{}
	var node *fakeComponent
	specs := []componentSpec{
		fakeSpec(rec, "node", roleNode, func(f *fakeComponent) { node = f }),
		fakeSpec(rec, "admin", roleAdmin, nil),
	}
	errc := make(chan error, 1)
	cfg := serveConfigForTest(t, "all")
	go func() {
		_, err := runServeWith(context.Background(), cfg, specs)
		errc <- err
	}()
	waitEvents(t, rec, 2)
	close(node.done)
	wantNodeStopped(t, errc, rec)
}

// wantNodeStopped checks that serve (its error on errc) ended within 10 s
// because the node component stopped by itself, having drained the admin
// listener and the node in reverse order of their start.
func wantNodeStopped(t *testing.T, errc <-chan error, rec *recorder) {
	t.Helper()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "component node: stopped unexpectedly") {
			t.Fatalf("serve = %v, want the node failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve kept running after a component stopped")
	}
	if got, want := rec.list(), []string{"start node", "start admin", "drain admin", "drain node"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func waitEvents(t *testing.T, rec *recorder, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := rec.list(); len(got) < n {
			return fmt.Errorf("events %v, want %d", got, n)
		}
		return nil
	})
}
