package platform

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// slotEnv deploys the hello function to a registry on an embedded NATS
// server and returns a maker of nodes serving it with one load slot.
func slotEnv(t *testing.T) (newNode func() *Node) {
	t.Helper()
	s := testutil.RunNATS(t)
	nc := testutil.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.New(ctx, testutil.JetStream(t, nc), registry.WithLogger(log))
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	host, err := wasmhost.New(ctx, wasmhost.Config{}.WithCompilationCacheDir(testutil.CompileCacheDir(t)).
		WithLogger(log).WithInitTimeout(time.Minute))
	if err != nil {
		t.Fatalf("wasm host: %v", err)
	}
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	wasm := testutil.Wasm(t, "functions/examples/hello")
	info, err := host.Validate(ctx, wasm)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if _, err := reg.Deploy(ctx, registry.Spec{Name: "hello", Phases: info.Phases}, wasm); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	return func() *Node {
		n, err := NewNode(Config{NATS: testutil.Connect(t, s), Registry: reg, Host: host, Logger: log, MaxConcurrentLoads: 1})
		if err != nil {
			t.Fatalf("new node: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Drain(ctx)
		})
		return n
	}
}

// A node loads at most MaxConcurrentLoads versions at once: with the one
// slot taken, the function waits, and loads once the slot is free. (A node
// starting with a hundred functions read every module at once, and the
// server dropped its connection as a slow consumer.)
func TestLoadsWaitForAFreeSlot(t *testing.T) {
	newNode := slotEnv(t)
	n := newNode()
	n.loadSlots <- struct{}{} // another load holds the only slot

	started := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		started <- n.Start(ctx)
	}()
	select {
	case err := <-started:
		t.Fatalf("Start returned (%v) while no load slot was free: the function loaded without one", err)
	case <-time.After(time.Second):
	}
	if h := n.Health(); len(h.Functions) != 1 || h.Functions[0].State != FunctionLoading {
		t.Fatalf("functions while the slot is taken = %+v, want hello loading", h.Functions)
	}

	<-n.loadSlots // the other load is done
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Start did not return after the slot was freed")
	}
	if h := n.Health(); len(h.Functions) != 1 || h.Functions[0].State != FunctionServing {
		t.Fatalf("functions = %+v, want hello serving", h.Functions)
	}
	if len(n.loadSlots) != 0 {
		t.Fatalf("%d load slots still taken after the load", len(n.loadSlots))
	}
}

// A load waiting for its turn does not hold up a drain.
func TestDrainDoesNotWaitForQueuedLoads(t *testing.T) {
	newNode := slotEnv(t)
	n := newNode()
	n.loadSlots <- struct{}{}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = n.Start(ctx)
	}()
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if h := n.Health(); len(h.Functions) != 1 {
			return errors.New("the node has not seen hello yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("drain took %v with a load waiting for a slot", d)
	}
	<-n.loadSlots
}
