package ws_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/ws"
)

// An edge routes a WebSocket to the "shout" function. Here a tiny NATS
// micro service stands in for the node that would run the function's wasm:
// it answers each text event with a 301 op sending the text back in
// capitals.
func Example() {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		fmt.Println("nats not ready")
		return
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	// The stand-in node.
	svc, err := micro.AddService(nc, micro.Config{Name: "shout", Version: "1.0.0", QueueGroup: "shout"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Stop()
	_ = svc.AddEndpoint("events", micro.HandlerFunc(func(r micro.Request) {
		var req protocol.PluginRequest
		var inv protocol.Invocation
		if protocol.DecodeRequest(r.Data(), &req) != nil || protocol.DecodeInvocation(req.Data, &inv) != nil {
			_ = r.Error("400", "bad request", nil)
			return
		}
		var ops []protocol.Op
		if inv.WS.Kind == protocol.WSText {
			ops = append(ops, protocol.Op{Code: protocol.OpWSSendText, Value: []byte(strings.ToUpper(string(inv.WS.Payload)))})
		}
		resp := protocol.PluginResponse{Version: protocol.Version, RequestID: req.RequestID, Action: protocol.ActionNext, Data: protocol.AppendOps(nil, ops)}
		_ = r.Respond(resp.AppendMsgpack(nil))
	}), micro.WithEndpointSubject(protocol.EventsSubject("nylon.dev", "shout")))

	// The edge, mounted on an HTTP server.
	edge, err := ws.New(ws.Config{Env: "dev"}, nc, ws.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(edge.Handler("shout", nil))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer edge.Close(ctx)

	// A client.
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	_ = c.Write(ctx, websocket.MessageText, []byte("hello"))
	_, reply, err := c.Read(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply))
	// Output: HELLO
}
