package ws_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

// The environment that turns this test binary into the client side of
// BenchmarkIdleConnections (see TestMain): the edge's URL and how many
// clients to open.
const (
	idleClientsURLEnv = "NYLON_WS_IDLE_CLIENTS_URL"
	idleClientsNEnv   = "NYLON_WS_IDLE_CLIENTS_N"
	idleClientsReady  = "idle clients ready"
)

// BenchmarkIdleConnections measures what an idle connection costs the
// edge: heap (HeapInuse after runtime.GC), goroutine stacks (StackInuse)
// and goroutines, per connection, with 1,000 real WebSocket clients open
// on an edge with the default Config (keep-alive on). A stand-in
// responder answers each open event with no ops ("open"), or with one
// 301 send of a 60-byte text that the client reads ("greeted": the
// connection has used its send queue and writer once).
//
// The clients run in a child process (this test binary again, which
// TestMain turns into idleClientsMain), so the benchmark's own heap and goroutines are
// only the server's share: the edge, its HTTP server, the embedded NATS
// server and the responder; what the kernel holds per socket is not
// counted. Each iteration measures before the clients connect and once
// every open event has been answered, then lets the child exit and waits
// for the edge to be empty again.
//
//	go test ./ws -run '^$' -bench BenchmarkIdleConnections -benchtime 1x -count 5
func BenchmarkIdleConnections(b *testing.B) {
	for _, greet := range []bool{false, true} {
		name := "open"
		if greet {
			name = "greeted"
		}
		b.Run(name, func(b *testing.B) { benchIdle(b, greet) })
	}
}

func benchIdle(b *testing.B, greet bool) {
	const conns = 1000
	s := testutil.RunNATS(b)
	idleResponder(b, s, "idle", greet)
	env := startEdge(b, s, ws.Config{}, "idle")
	// A first round sets up what the process keeps once it has served as
	// many connections (the NATS request mux, metric children, pools, the
	// goroutine descriptors the runtime reuses, grown maps), so that every
	// measured round starts from the same state.
	idleRound(b, env, conns, greet, -1)
	g0 := settledGoroutines(b, -1)
	var heap, stack, goroutines float64
	iterations := 0
	for b.Loop() {
		before := settledMem(b)
		g1, after := idleRound(b, env, conns, greet, g0)
		heap += float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / conns
		stack += float64(int64(after.StackInuse)-int64(before.StackInuse)) / conns
		goroutines += float64(g1-g0) / conns
		iterations++
	}
	n := float64(iterations)
	b.ReportMetric(heap/n, "heap-B/conn")
	b.ReportMetric(stack/n, "stack-B/conn")
	b.ReportMetric((heap+stack)/n, "B/conn")
	b.ReportMetric(goroutines/n, "goroutines/conn")
}

// idleRound opens n idle clients of env's edge and waits until the edge has
// had their open events answered (and written their greetings, with greet)
// and its goroutines are back waiting. It returns the goroutine count and
// memory statistics then, after closing the clients and waiting until the
// edge is back to g0 goroutines (when g0 >= 0).
func idleRound(b *testing.B, env *edgeEnv, n int, greet bool, g0 int) (int, runtime.MemStats) {
	b.Helper()
	opened := counted(b, env, "nylon_ws_events_total", map[string]string{"kind": "open", "outcome": "ok"})
	written := counted(b, env, "nylon_ws_messages_total", map[string]string{"direction": "out"})
	stop := startIdleClients(b, env.url(""), n)
	testutil.Eventually(b, 60*time.Second, 10*time.Millisecond, func() error {
		if got := int(counted(b, env, "nylon_ws_events_total", map[string]string{"kind": "open", "outcome": "ok"}) - opened); got != n {
			return fmt.Errorf("%d of %d open events answered", got, n)
		}
		if !greet {
			return nil
		}
		if got := int(counted(b, env, "nylon_ws_messages_total", map[string]string{"direction": "out"}) - written); got != n {
			return fmt.Errorf("%d of %d greetings written", got, n)
		}
		return nil
	})
	// The last open's eventLoop is back waiting once the goroutine count
	// stops moving.
	g := settledGoroutines(b, -1)
	m := settledMem(b)
	stop()
	testutil.Eventually(b, 60*time.Second, 10*time.Millisecond, func() error {
		if n := env.edge.Stats().Connections; n != 0 {
			return fmt.Errorf("%d connections still open", n)
		}
		return nil
	})
	settledGoroutines(b, g0)
	return g, m
}

// counted is the edge's metric name summed over labels, 0 before the
// edge has counted any.
func counted(b *testing.B, env *edgeEnv, name string, labels map[string]string) float64 {
	b.Helper()
	n, err := testutil.GatherSum(env.reg, name, labels)
	if errors.Is(err, testutil.ErrNoMetric) {
		return 0 // the vector has no child yet
	}
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// settledMem collects garbage twice (the second run frees what the first
// one's finalizers and sync.Pool victim caches let go) and reads the
// memory statistics.
func settledMem(b *testing.B) runtime.MemStats {
	b.Helper()
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// settledGoroutines waits until the goroutine count has not moved for
// 200ms (and equals want, unless want is negative) and returns it.
func settledGoroutines(b *testing.B, want int) int {
	b.Helper()
	last, since := runtime.NumGoroutine(), time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= 200*time.Millisecond && (want < 0 || n == want) {
			return n
		}
	}
	buf := make([]byte, 1<<20)
	b.Fatalf("goroutines did not settle: %d, want %d\n%s", last, want, buf[:runtime.Stack(buf, true)])
	return 0
}

// idleResponder stands in for the function's nodes: it answers every
// event with no ops, or an open event with a 301 send when greet is set,
// and keeps nothing, so that the benchmark's heap does not grow with the
// events it saw.
func idleResponder(b *testing.B, s *server.Server, function string, greet bool) {
	b.Helper()
	nc := testutil.Connect(b, s)
	var req protocol.PluginRequest
	var inv protocol.Invocation
	var out []byte
	greeting := protocol.AppendOps(nil, []protocol.Op{{Code: protocol.OpWSSendText,
		Value: []byte(`{"from":"system","text":"welcome to the room, 60-byte line"}`)}})
	// One subscription callback at a time: req and out are reused.
	_, err := nc.QueueSubscribe(protocol.EventsSubject(prefix, function), function, func(m *nats.Msg) {
		if err := protocol.DecodeRequest(m.Data, &req); err != nil {
			b.Errorf("decode event request: %v", err)
			return
		}
		resp := protocol.PluginResponse{Version: protocol.Version, RequestID: req.RequestID, SessionID: req.SessionID, Action: protocol.ActionNext}
		if greet {
			if err := protocol.DecodeInvocation(req.Data, &inv); err != nil {
				b.Errorf("decode invocation: %v", err)
				return
			}
			if inv.WS.Kind == protocol.WSOpen {
				resp.Data = greeting
			}
		}
		out = resp.AppendMsgpack(out[:0])
		if err := m.Respond(out); err != nil {
			b.Errorf("respond: %v", err)
		}
	})
	if err != nil {
		b.Fatalf("subscribe events of %s: %v", function, err)
	}
	if err := nc.Flush(); err != nil {
		b.Fatalf("flush: %v", err)
	}
}

// startIdleClients runs this test binary as the client process with n
// clients of u and waits until they are connected. The returned function
// ends the process (its clients drop without a close handshake) and waits
// for it.
func startIdleClients(b *testing.B, u string, n int) (stop func()) {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), idleClientsURLEnv+"="+u, idleClientsNEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatalf("client process stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatalf("client process stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start client process: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = stdin.Close()
			if err := cmd.Wait(); err != nil {
				b.Errorf("client process: %v", err)
			}
		})
	}
	b.Cleanup(stop)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == idleClientsReady {
				// Nothing reads the rest (a line or two at exit, which the
				// pipe holds): no goroutine of this process is counted
				// while the clients are open.
				ready <- nil
				return
			}
			b.Logf("client process: %s", sc.Text())
		}
		ready <- fmt.Errorf("client process ended before its clients were ready: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		b.Fatalf("%d clients not connected after 60s", n)
	}
	return stop
}

// TestMain runs the client process of BenchmarkIdleConnections when the
// benchmark starts this binary with its environment, and the tests
// otherwise.
func TestMain(m *testing.M) {
	if u := os.Getenv(idleClientsURLEnv); u != "" {
		os.Exit(idleClientsMain(u, os.Getenv(idleClientsNEnv)))
	}
	os.Exit(m.Run())
}

// idleClientsMain is the client side of BenchmarkIdleConnections, run in a
// process of its own. It opens n clients of u, says so on stdout, and holds
// them (reading, which answers pings) until its stdin is closed. It returns
// the process's exit code.
func idleClientsMain(u, nClients string) int {
	n, err := strconv.Atoi(nClients)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", idleClientsNEnv, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := make([]*websocket.Conn, n)
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
				c, _, err := websocket.Dial(dctx, u, nil)
				dcancel()
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					continue
				}
				clients[i] = c
				go func() {
					for {
						if _, _, err := c.Read(ctx); err != nil {
							return
						}
					}
				}()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	failed := false
	for err := range errs {
		fmt.Fprintln(os.Stderr, err)
		failed = true
	}
	if failed {
		return 1
	}
	fmt.Println(idleClientsReady)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range clients {
		if c != nil {
			_ = c.CloseNow()
		}
	}
	return 0
}
