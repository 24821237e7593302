package ws_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

// BenchmarkBroadcastFanout measures one broadcast reaching a room of 100
// members split over two edges: from the publish on the room subject (what
// a 312 op does) to the last member's read. One broadcast in flight at a
// time; p50/p99 are of that latency.
func BenchmarkBroadcastFanout(b *testing.B) {
	const members = 100
	s := testutil.RunNATS(b)
	respond(b, s, "relay", true, relay)
	edges := []*edgeEnv{
		startEdge(b, s, ws.Config{PingInterval: -1}, "relay"),
		startEdge(b, s, ws.Config{PingInterval: -1}, "relay"),
	}
	var got atomic.Int64
	done := make(chan struct{}, 1)
	ctx := context.Background()
	for i := range members {
		c, _, err := websocket.Dial(ctx, edges[i%2].url("room=bench"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.CloseNow() })
		go func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
				if got.Add(1) == members {
					done <- struct{}{}
				}
			}
		}()
	}
	testutil.Eventually(b, 10*time.Second, 5*time.Millisecond, func() error {
		if n := edges[0].edge.Stats().Members + edges[1].edge.Stats().Members; n != members {
			return fmt.Errorf("%d members joined", n)
		}
		return nil
	})
	pub := testutil.Connect(b, s)
	subject := protocol.RoomSubject(prefix, "bench")
	payload := []byte(`{"from":"bench","text":"a message of some sixty bytes, like a chat line"}`)
	lat := make([]time.Duration, 0, b.N)

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		got.Store(0)
		start := time.Now()
		if err := pub.PublishMsg(&nats.Msg{Subject: subject, Data: payload, Header: nats.Header{ws.HeaderWSType: {"text"}}}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.Fatalf("broadcast reached %d of %d members", got.Load(), members)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	b.ReportMetric(float64(members*b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkEcho measures round trips client -> edge -> function (a NATS
// responder) -> edge -> client, over one connection and over many.
func BenchmarkEcho(b *testing.B) {
	for _, conns := range []int{1, 64} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			s := testutil.RunNATS(b)
			respond(b, s, "echo", true, echo)
			env := startEdge(b, s, ws.Config{PingInterval: -1}, "echo")
			ctx := context.Background()
			clients := make([]*websocket.Conn, conns)
			for i := range clients {
				c, _, err := websocket.Dial(ctx, env.url(""), nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = c.CloseNow() })
				clients[i] = c
			}
			msg := []byte("ping")
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / conns
			for i, c := range clients {
				n := per
				if i == 0 {
					n += b.N % conns
				}
				wg.Go(func() {
					for range n {
						if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
							b.Error(err)
							return
						}
						if _, _, err := c.Read(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
