package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/registry"
)

// TestServeOnNATSCluster runs the platform as it runs on several machines:
// a three-server NATS cluster, two nodes and a gateway in processes of
// their own, each connected to a different server, with --replicas 3. The
// registry and the dead-letter stream are replicated; losing a server
// loses no function, no deploy and no node: the node on it reconnects to
// another server and serves again.
func TestServeOnNATSCluster(t *testing.T) {
	c := testutil.RunNATSCluster(t, 3)
	start := func(server int, role, nodeID string) *background {
		args := []string{"serve", "--nats", c.Servers[server].ClientURL(), "--role", role, "--log-level", "debug",
			"--replicas", "3", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
		if nodeID != "" {
			args = append(args, "--node-id", nodeID)
		}
		b := startCmd(t, args...)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("serve on server %d, role %s, stderr:\n%s", server+1, role, b.stderr.String())
			}
		})
		b.waitLine(t, readyLine)
		return b
	}
	nodeA := start(0, "node,admin", "node-a")
	nodeB := start(1, "node,admin", "node-b")
	edge := start(2, "gateway,admin", "")
	adminA, adminB := nodeA.waitLine(t, adminLine), nodeB.waitLine(t, adminLine)
	admin, gw := edge.waitLine(t, adminLine), edge.waitLine(t, gatewayLine)

	hello := testutil.Wasm(t, "functions/examples/hello")
	deployModule(t, admin, "hello", hello, url.Values{"route": {"/hello"}})
	serving := func(base string, version uint64) func() error {
		return func() error {
			_, h := getHealthz(t, base)
			if !h.NATS.Connected || len(h.Functions) != 1 || h.Functions[0].State != platform.FunctionServing || h.Functions[0].Version != version {
				return fmt.Errorf("%s health: %+v", base, h)
			}
			return nil
		}
	}
	for _, base := range []string{adminA, adminB} {
		testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, serving(base, 1))
	}
	answers := func(path string, n int) func() error {
		return func() error {
			for i := range n {
				code, _, body := get(t, gw+path+"?name=c", nil)
				if code != 200 || body != `{"message":"hello, c"}` {
					return fmt.Errorf("GET %s (%d in a row): %d %s", path, i, code, body)
				}
			}
			return nil
		}
	}
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, answers("/hello", 1))

	// What the processes created is replicated on three servers.
	nc, err := nats.Connect(c.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js := testutil.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, stream := range []string{"KV_" + registry.FunctionsBucket("dev"), "OBJ_" + registry.ModulesBucket("dev"), gateway.DLQStreamName("nylon.dev")} {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", stream, r)
		}
	}

	// Server 1 goes away: node A reconnects to a server it learned from
	// the cluster, the registry keeps its quorum.
	c.Stop(t, 0)
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, answers("/hello", 20))
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		_, h := getHealthz(t, adminA)
		if !h.NATS.Connected || h.NATS.Server == c.Servers[0].ClientURL() {
			return fmt.Errorf("node A: %+v", h.NATS)
		}
		return nil
	})
	// A deploy still reaches every process. One whose registry watch was
	// served by the lost server sees it once that watch has recovered.
	deployModule(t, admin, "hello", hello, url.Values{"route": {"/hello", "/hi"}})
	for _, base := range []string{adminA, adminB} {
		testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, serving(base, 2))
	}
	testutil.Eventually(t, 60*time.Second, 20*time.Millisecond, answers("/hi", 1))

	// With node B gone too, node A alone answers: its queue subscriptions
	// came back with the reconnect.
	if code := nodeB.stop(t); code != 0 {
		t.Fatalf("node B exited with %d:\n%s", code, nodeB.stderr.String())
	}
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, answers("/hi", 20))
}
