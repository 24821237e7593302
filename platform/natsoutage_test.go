package platform_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// reconnectingConn connects to s as name, reconnecting quickly and
// forever, as nodes do (natsconn), closed when the test ends.
func reconnectingConn(t *testing.T, s *server.Server, name string) *nats.Conn {
	t.Helper()
	return testutil.Connect(t, s, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
}

// kickClient makes s close the connection of the client called name, as
// it does with a slow consumer or a stale connection.
func kickClient(t *testing.T, s *server.Server, name string) {
	t.Helper()
	cz, err := s.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cz.Conns {
		if c.Name == name {
			if err := s.DisconnectClientByID(c.Cid); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no client connection %q", name)
}

// A node whose connection the server cuts while calls run reconnects and
// serves on: the replies of the calls it was running reach their callers
// (nats.go sends them once reconnected), its micro services answer
// discovery again and new requests are served, and nothing is left
// behind.
func TestNodeServesAgainAfterReconnect(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 4}}, counterDir)
	nc := reconnectingConn(t, e.srv, "node")
	n := e.startNode("n1", withConfig(func(c *platform.Config) { c.NATS = nc }))
	if _, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()

	const running = 3
	errs := make(chan error, running)
	for range running {
		go func() {
			_, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, "sleep=300ms"), 10*time.Second)
			errs <- err
		}()
	}
	testutil.Eventually(t, 5*time.Second, time.Millisecond, func() error {
		if in := n.Health().Functions[0].Inflight; in != running {
			return fmt.Errorf("%d calls running, want %d", in, running)
		}
		return nil
	})
	reconnects := nc.Stats().Reconnects
	kickClient(t, e.srv, "node")
	for range running {
		if err := <-errs; err != nil {
			t.Errorf("a call running when the connection was cut: %v", err)
		}
	}
	testutil.Eventually(t, 5*time.Second, time.Millisecond, func() error {
		if nc.Stats().Reconnects == reconnects {
			return errors.New("not reconnected yet")
		}
		return nil
	})
	if got := len(collect[micro.Ping](t, e.nc, micro.PingVerb, "counter", 1)); got != 1 {
		t.Fatalf("%d answers to $SRV.PING.counter, want 1", got)
	}
	if _, _, err := call(e.nc, "counter", request(protocol.PhaseRequestFilter, ""), 5*time.Second); err != nil {
		t.Fatalf("after the reconnect: %v", err)
	}
	if h := n.Health(); h.Status != platform.HealthOK || !h.NATS.Connected {
		t.Fatalf("health after the reconnect: %+v", h)
	}
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if g := runtime.NumGoroutine(); g > goroutines {
			return fmt.Errorf("%d goroutines, %d before the connection was cut", g, goroutines)
		}
		return nil
	})
}

// A node drained while NATS is down (Ctrl-C during an outage) finishes
// the calls it admitted and stops without waiting for NATS. nats.go's drain of a
// subscription waits up to 10 s for a flush that cannot happen while
// disconnected, and the drain's own flush of the replies failed after 2 s
// more, so serve took 12 s to stop and exited 1 for "shutdown incomplete".
func TestNodeDrainsPromptlyWhileNATSIsDown(t *testing.T) {
	e := newEnv(t)
	e.deploy(registry.Spec{Name: "counter", Limits: registry.Limits{MaxWorkers: 4}}, counterDir)
	nc := reconnectingConn(t, e.srv, "node")
	n := e.startNode("n1", withConfig(func(c *platform.Config) { c.NATS = nc }))

	// A call runs when NATS goes away. Its caller is cut off too, and
	// gives up soon.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, _ = call(e.nc, "counter", request(protocol.PhaseRequestFilter, "sleep=200ms"), 500*time.Millisecond)
	}()
	defer wg.Wait()
	testutil.Eventually(t, 5*time.Second, time.Millisecond, func() error {
		if in := n.Health().Functions[0].Inflight; in != 1 {
			return fmt.Errorf("%d calls running, want 1", in)
		}
		return nil
	})
	e.srv.Shutdown()
	testutil.Eventually(t, 5*time.Second, time.Millisecond, func() error {
		if h := n.Health(); h.Status != platform.HealthUnavailable || h.NATS.Connected {
			return fmt.Errorf("health while NATS is down: %+v", h)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.Drain(ctx); err != nil {
		t.Fatalf("drain while NATS is down: %v", err)
	}
	// The running call's 200 ms, with slack for a busy machine: it took
	// 12 s and more (nats.go's drain flushes, and the registry watch's
	// consumer deletion, each waiting out a timeout).
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("drain while NATS is down took %v", d)
	}
}
