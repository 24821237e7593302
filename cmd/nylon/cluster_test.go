package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// TestServeOnNATSCluster runs the platform as it runs on several machines:
// a three-server NATS cluster, two nodes and two edges in processes of
// their own, each process connected to a different server, with
// --replicas 3. The registry and the dead-letter stream are replicated;
// losing a server loses no function, no deploy and no node: the node on it
// reconnects to another server and serves again, and a chat room still
// spans the edges on the other two.
func TestServeOnNATSCluster(t *testing.T) {
	c := testutil.RunNATSCluster(t, 3)
	// With external NATS the data directory holds only the compile cache:
	// processes on one machine can share it, and these do, so that each
	// module is compiled once.
	data := t.TempDir()
	start := func(server int, role, nodeID string) *background {
		args := []string{"serve", "--nats", c.Servers[server].ClientURL(), "--role", role, "--log-level", "debug",
			"--replicas", "3", "--data", data, "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
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
	nodeB := start(1, "node,gateway,admin", "node-b")
	edge := start(2, "gateway,admin", "")
	adminA, adminB := nodeA.waitLine(t, adminLine), nodeB.waitLine(t, adminLine)
	admin, gw := edge.waitLine(t, adminLine), edge.waitLine(t, gatewayLine)
	gwB := nodeB.waitLine(t, gatewayLine)

	hello := testutil.Wasm(t, "functions/examples/hello")
	deployModule(t, admin, "hello", hello, url.Values{"route": {"/hello"}})
	deployModule(t, admin, "chat", testutil.Wasm(t, "functions/examples/chat"), url.Values{"route": {"/chat/ws"}})
	serving := func(base string, version uint64) func() error {
		return func() error {
			_, h := getHealthz(t, base)
			if !h.NATS.Connected || len(h.Functions) != 2 {
				return fmt.Errorf("%s health: %+v", base, h)
			}
			for _, f := range h.Functions {
				if f.State != platform.FunctionServing || f.Name == "hello" && f.Version != version {
					return fmt.Errorf("%s health: %+v", base, h)
				}
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
	streams := []string{registry.FunctionsStream("dev"), registry.ModulesStream("dev"), gateway.DLQStreamName("nylon.dev")}
	for _, stream := range streams {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", stream, r)
		}
	}
	for _, b := range []*background{nodeA, nodeB, edge} {
		if strings.Contains(b.stderr.String(), "single copy") {
			t.Errorf("a single-copy warning with --replicas 3:\n%s", b.stderr.String())
		}
	}

	// Server 1 goes away: node A reconnects to a server it learned from
	// the cluster, the registry keeps its quorum.
	c.Stop(t, 0)
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, answers("/hello", 20))
	// A stream the lost server led elects another leader within seconds;
	// until then the registry answers 503 (OPERATIONS.md).
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, name := range streams {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := js.Stream(sctx, name)
			cancel()
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			if cl := s.CachedInfo().Cluster; cl == nil || cl.Leader == "" || cl.Leader == c.Servers[0].Name() {
				return fmt.Errorf("stream %s: cluster %+v, want a leader among the servers left", name, cl)
			}
		}
		return nil
	})
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

	// A chat room spans the edges on servers 2 and 3.
	dial := func(base, name string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/chat/ws?room=cluster&name="+name, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", name, err)
		}
		t.Cleanup(func() { c.CloseNow() })
		readUntil(ctx, t, c, name) // its own join notice: a member now
		return c
	}
	alice, bob := dial(gw, "alice"), dial(gwB, "bob")
	// Bob's edge subscribed to the room on server 2; server 3, where
	// alice's edge publishes, learns of it through the route a moment
	// later, and a broadcast published before then misses bob
	// (WEBSOCKET.md): both edges' subscriptions must count there.
	room := protocol.RoomSubject("nylon.dev", "cluster")
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := c.Servers[2].GlobalAccount().Interest(room); n < 2 {
			return fmt.Errorf("server 3 knows %d subscriptions to %s, want 2", n, room)
		}
		return nil
	})
	chat(ctx, t, alice, bob, "hi across the cluster")

	// With node B gone too, node A alone answers: its queue subscriptions
	// came back with the reconnect.
	if code := nodeB.stop(t); code != 0 {
		t.Fatalf("node B exited with %d:\n%s", code, nodeB.stderr.String())
	}
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, answers("/hi", 20))
}

// A process on a cluster whose registry and dead-letter streams have one
// replica (created without --replicas) says so, naming the fix.
func TestServeWarnsOfSingleCopiesOnACluster(t *testing.T) {
	c := testutil.RunNATSCluster(t, 3)
	b := startCmd(t, "serve", "--nats", c.ClientURLs(), "--data", t.TempDir(), "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	b.waitLine(t, readyLine)
	for _, stream := range []string{registry.FunctionsStream("dev"), registry.ModulesStream("dev"), gateway.DLQStreamName("nylon.dev")} {
		if want := "nats stream edit " + stream + " --replicas 3"; !strings.Contains(b.stderr.String(), want) {
			t.Errorf("no warning naming %q in:\n%s", want, b.stderr.String())
		}
	}
}

// Started together with its NATS cluster, serve waits for JetStream (no
// meta leader while only one server of three runs) instead of exiting,
// and becomes ready once the cluster has formed.
func TestServeWaitsForJetStreamOfAFormingCluster(t *testing.T) {
	c := testutil.NewNATSCluster(t, 3)
	s1 := c.Start(t, 0)
	b := startCmd(t, "serve", "--nats", s1.ClientURL(), "--replicas", "3", "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	testutil.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(b.stderr.String(), "JetStream not ready; retrying") {
			return fmt.Errorf("no retry logged yet:\n%s", b.stderr.String())
		}
		return nil
	})
	if readyLine.MatchString(b.stdout.String()) {
		t.Fatalf("ready without JetStream:\n%s", b.stdout.String())
	}
	c.Start(t, 1)
	c.Start(t, 2)
	testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		if !readyLine.MatchString(b.stdout.String()) {
			return fmt.Errorf("not ready:\n%s\n%s", b.stdout.String(), b.stderr.String())
		}
		return nil
	})
}

// A NATS server without JetStream is a configuration error, not a wait:
// serve exits at once and says so.
func TestServeExitsWithoutJetStream(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.JetStream = false
	s := testutil.RunNATSWith(t, opts)
	start := time.Now()
	code, _, stderr := runCmd(t, "serve", "--nats", s.ClientURL(), "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if code == 0 || !strings.Contains(strings.ToLower(stderr), "jetstream not enabled") || time.Since(start) > 15*time.Second {
		t.Fatalf("exit %d after %v, stderr:\n%s", code, time.Since(start), stderr)
	}
}
