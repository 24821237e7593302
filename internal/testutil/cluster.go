package testutil

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of embedded nats-servers on loopback.
type Cluster struct {
	// Servers holds the servers by index, nil for one not started yet
	// (NewNATSCluster); a stopped one stays, not running.
	Servers []*server.Server
	opts    []*server.Options
}

// RunNATSCluster starts n embedded nats-servers with JetStream, routed to
// each other as one cluster on 127.0.0.1, and returns once the JetStream
// meta group has a leader that every server follows and that can place
// replicas on all of them. Each has a random client port and its own store
// in a fresh t.TempDir(); all are shut down when the test ends.
func RunNATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := NewNATSCluster(t, n)
	for i := range n {
		c.Start(t, i)
	}
	c.WaitReady(t)
	return c
}

// NewNATSCluster configures n servers as RunNATSCluster does without
// starting any: Start each, then WaitReady. A cluster with fewer than a
// majority running has no JetStream.
//
// Route ports are taken from the kernel before the servers start (every
// server must know the others' routes from the start for JetStream to form
// one meta group), so another process could take one in between; the start
// fails loudly then.
func NewNATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("nats cluster: %d servers", n)
	}
	ports, err := freePorts(n)
	if err != nil {
		t.Fatalf("nats cluster: %v", err)
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	c := &Cluster{Servers: make([]*server.Server, n)}
	for i := range n {
		opts := NATSOptions(t)
		opts.ServerName = fmt.Sprintf("s%d", i+1)
		opts.Cluster = server.ClusterOpts{Name: "nylon-test", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.opts = append(c.opts, opts)
	}
	return c
}

// Start starts server i; it is shut down when the test ends.
func (c *Cluster) Start(t testing.TB, i int) *server.Server {
	t.Helper()
	c.Servers[i] = RunNATSWith(t, c.opts[i])
	return c.Servers[i]
}

// WaitReady waits until the running servers are routed to each other and
// JetStream has a meta leader that can place replicas on all of them.
func (c *Cluster) WaitReady(t testing.TB) {
	t.Helper()
	Eventually(t, 30*time.Second, 20*time.Millisecond, c.jetStreamReady)
}

// ClientURLs is every server's client URL, comma-separated: what
// `nylon serve --nats` and nats.Connect take.
func (c *Cluster) ClientURLs() string {
	var urls []string
	for _, s := range c.Servers {
		if s != nil {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// jetStreamReady reports an error until the running servers are fully
// routed, agree on a JetStream meta leader, and that leader can place
// replicas on every one of them.
func (c *Cluster) jetStreamReady() error {
	var running []*server.Server
	for _, s := range c.Servers {
		if s != nil && s.Running() {
			running = append(running, s)
		}
	}
	leaders := 0
	for _, s := range running {
		if s.NumRoutes() < len(running)-1 {
			return fmt.Errorf("server %s has %d routes, want %d", s.Name(), s.NumRoutes(), len(running)-1)
		}
		if s.JetStreamIsLeader() {
			leaders++
			// Peers the leader has stats from: only those take replicas
			// ("no suitable peers for placement" otherwise).
			if peers := s.JetStreamClusterPeers(); len(peers) != len(running) {
				return fmt.Errorf("JetStream meta leader %s sees %d peers online, want %d", s.Name(), len(peers), len(running))
			}
		}
		if !s.JetStreamIsCurrent() {
			return fmt.Errorf("server %s: JetStream meta group not current", s.Name())
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%d JetStream meta leaders among %d servers", leaders, len(running))
	}
	return nil
}

// Stop shuts server i down (its store stays) and waits until the others
// have a meta leader again.
func (c *Cluster) Stop(t testing.TB, i int) {
	t.Helper()
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
	c.WaitReady(t)
}

// freePorts asks the kernel for n distinct free TCP ports on loopback.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			return nil, errors.New("free port: not a TCP address")
		}
		ports = append(ports, addr.Port)
	}
	return ports, nil
}
