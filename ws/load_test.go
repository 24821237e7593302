package ws_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/ws"
)

// raiseFileLimit lifts the soft descriptor limit to at least n (up to the
// hard limit): each connection costs one descriptor per side.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Fatalf("descriptor hard limit %d is below the %d this test needs", lim.Max, n)
	}
	old := lim
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// 1,000 connections held open at once on one edge each exchange a message
// with the function within a bounded time.
func TestThousandConnections(t *testing.T) {
	const conns = 1000
	raiseFileLimit(t, 3*conns)
	s := testutil.RunNATS(t)
	respond(t, s, "echo", true, echo)
	env := startEdge(t, s, ws.Config{PingInterval: -1}, "echo")
	u := env.url("")

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		mu      sync.Mutex
		clients []*websocket.Conn
		errs    []error
	)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range work {
				c, err := exchange(ctx, u, i)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					clients = append(clients, c)
				}
				mu.Unlock()
			}
		})
	}
	for i := range conns {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	t.Cleanup(func() {
		for _, c := range clients {
			_ = c.CloseNow()
		}
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d connections failed, first: %v", len(errs), conns, errs[0])
	}
	if n := env.edge.Stats().Connections; n != conns {
		t.Fatalf("%d connections open on the edge, want %d", n, conns)
	}
	if got := testutil.MetricSum(t, env.reg, "nylon_ws_connections", nil); got != conns {
		t.Fatalf("nylon_ws_connections = %v, want %d", got, conns)
	}
	t.Logf("%d connections each exchanged a message in %v", conns, elapsed)
	if elapsed > 20*time.Second {
		t.Fatalf("%d exchanges took %v, want under 20s", conns, elapsed)
	}
	for _, c := range clients {
		_ = c.CloseNow()
	}
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := env.edge.Stats().Connections; n != 0 {
			return fmt.Errorf("%d connections still open", n)
		}
		return nil
	})
}

// exchange dials u, sends one message and waits for its echo, leaving the
// connection open.
func exchange(ctx context.Context, u string, i int) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %d: %w", i, err)
	}
	want := fmt.Sprintf("hello %d", i)
	if err := c.Write(ctx, websocket.MessageText, []byte(want)); err != nil {
		_ = c.CloseNow()
		return nil, fmt.Errorf("write %d: %w", i, err)
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		_ = c.CloseNow()
		return nil, fmt.Errorf("read %d: %w", i, err)
	}
	if string(got) != want {
		_ = c.CloseNow()
		return nil, fmt.Errorf("connection %d got %q, want %q", i, got, want)
	}
	return c, nil
}
