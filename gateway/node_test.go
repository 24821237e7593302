package gateway_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// startNode deploys each guest package dir (built once per run by
// testutil.Wasm) under its function name and starts a real platform node
// serving them over nodeNC, the node's own connection as in a deployment,
// with its metrics on metrics. It returns the phases each function
// serves; the node drains when the test ends.
func startNode(t *testing.T, nodeNC *nats.Conn, metrics *prometheus.Registry, guests map[string]string) map[string]protocol.PhaseSet {
	t.Helper()
	// Generous: a compile that misses the shared cache under -race takes
	// tens of seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg, err := registry.New(ctx, testutil.JetStream(t, nodeNC))
	if err != nil {
		t.Fatal(err)
	}
	host, err := wasmhost.New(ctx, wasmhost.Config{}.WithCompilationCacheDir(testutil.CompileCacheDir(t)).WithInitTimeout(time.Minute).
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	phases := map[string]protocol.PhaseSet{}
	for name, dir := range guests {
		wasm := testutil.Wasm(t, dir)
		info, err := host.Validate(ctx, wasm)
		if err != nil {
			t.Fatalf("validate %s: %v", dir, err)
		}
		if _, err := reg.Deploy(ctx, registry.Spec{Name: name, Phases: info.Phases}, wasm); err != nil {
			t.Fatalf("deploy %s: %v", name, err)
		}
		phases[name] = info.Phases
	}
	n, err := platform.NewNode(platform.Config{NATS: nodeNC, Registry: reg, Host: host, NodeID: "n1",
		Logger: slog.New(slog.DiscardHandler), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_ = n.Drain(dctx)
	})
	return phases
}
