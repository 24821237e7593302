package examplestest

import (
	"context"
	"testing"

	"github.com/nylon-functions/nylon/protocol"
)

// benchCall runs c on g b.N times through wasmhost's Module.Call, the way a
// node calls a warm instance: the figures include checking out the one
// pooled instance, answering the guest's reads from the invocation and
// copying its writes into fresh protocol.Ops.
func benchCall(b *testing.B, g *guest, c *call, want protocol.Action) {
	b.Helper()
	if len(c.bad) > 0 {
		b.Fatalf("call cannot be built: %v", c.bad)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := g.mod.Call(ctx, c.phase, c.event, &c.inv, c.reqID)
		if err != nil {
			b.Fatal(err)
		}
		if res.Action != want {
			b.Fatalf("action = %v, want %v (%s)", res.Action, want, res.Error)
		}
	}
}

// BenchmarkHello is one request_filter call of the hello example: one
// keyed read, three writes, a JSON encoding.
func BenchmarkHello(b *testing.B) {
	g := load(b, helloDir)
	c := newCall(protocol.PhaseRequestFilter).request("GET", "/hello?name=ana")
	benchCall(b, g, c, protocol.ActionEnd)
}

// BenchmarkHeaders is one response_filter call of the headers example:
// five config reads, a header read, seven writes.
func BenchmarkHeaders(b *testing.B) {
	g := load(b, headersDir)
	c := newCall(protocol.PhaseResponseFilter).set(protocol.ReadResponseStatus, "200").
		respHeaders("Server", "nginx")
	benchCall(b, g, c, protocol.ActionNext)
}

// BenchmarkChatMessage is one WebSocket text message through the chat
// example: payload, query and id reads, a JSON encoding, a broadcast.
func BenchmarkChatMessage(b *testing.B) {
	g := load(b, chatDir)
	c := wsCall(protocol.EventWSText, "c1").request("GET", "/chat?room=r1&name=ana").
		set(protocol.MethodGetPayload, "hello everyone")
	benchCall(b, g, c, protocol.ActionNext)
}

// BenchmarkSDKMinimal is the SDK's floor: one call that reads the path
// (one host read, one string) and returns Next.
func BenchmarkSDKMinimal(b *testing.B) {
	g := load(b, sdkGuestDir)
	c := newCall(protocol.PhaseRequestFilter).request("GET", "/noop")
	benchCall(b, g, c, protocol.ActionNext)
}
