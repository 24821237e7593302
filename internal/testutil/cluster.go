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
	Servers []*server.Server
}

// RunNATSCluster starts n embedded nats-servers with JetStream, routed to
// each other as one cluster on 127.0.0.1, and returns once the JetStream
// meta group has a leader that every server follows and that can place
// replicas on all of them. Each has a random
// client port and its own store in a fresh t.TempDir(); all are shut down
// when the test ends.
//
// Route ports are taken from the kernel before the servers start (every
// server must know the others' routes from the start for JetStream to form
// one meta group), so another process could take one in between; the start
// fails loudly then.
func RunNATSCluster(t testing.TB, n int) *Cluster {
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
	c := &Cluster{}
	for i := range n {
		opts := NATSOptions(t)
		opts.ServerName = fmt.Sprintf("s%d", i+1)
		opts.Cluster = server.ClusterOpts{Name: "nylon-test", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.Servers = append(c.Servers, RunNATSWith(t, opts))
	}
	Eventually(t, 30*time.Second, 20*time.Millisecond, c.jetStreamReady)
	return c
}

// ClientURLs is every server's client URL, comma-separated: what
// `nylon serve --nats` and nats.Connect take.
func (c *Cluster) ClientURLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// jetStreamReady reports an error until the running servers are fully
// routed, agree on a JetStream meta leader, and that leader can place
// replicas on every one of them.
func (c *Cluster) jetStreamReady() error {
	var running []*server.Server
	for _, s := range c.Servers {
		if s.Running() {
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
	Eventually(t, 30*time.Second, 20*time.Millisecond, c.jetStreamReady)
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
