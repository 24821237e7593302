package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/protocol"
)

// A deployed function answers at its route as soon as the registry's
// routes are handed to the gateway. Here a NATS micro endpoint stands in
// for the platform node serving function "hello".
func ExampleGateway_SetFunctionRoutes() {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(5 * time.Second) {
		panic("nats not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	svc, _ := micro.AddService(nc, micro.Config{Name: "hello", Version: "1.0.0"})
	defer svc.Stop()
	_ = svc.AddEndpoint("request_filter", micro.HandlerFunc(func(req micro.Request) {
		var pr protocol.PluginRequest
		var inv protocol.Invocation
		_ = protocol.DecodeRequest(req.Data(), &pr)
		_ = protocol.DecodeInvocation(pr.Data, &inv)
		name, _ := protocol.Lookup(inv.Request.Params, "name")
		resp := protocol.PluginResponse{Version: protocol.Version, RequestID: pr.RequestID, SessionID: pr.SessionID,
			Action: protocol.ActionEnd,
			Data:   protocol.AppendOps(nil, []protocol.Op{{Code: protocol.OpSetResponseBody, Value: []byte("hello, " + name)}})}
		_ = req.Respond(resp.AppendMsgpack(nil))
	}), micro.WithEndpointSubject("nylon.dev.hello.request_filter"), micro.WithEndpointQueueGroup("hello"))

	gw, err := gateway.New(gateway.Config{}, nc, gateway.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer gw.Close(context.Background())

	_ = gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/hello/{name}", Function: "hello"}})
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "/hello/world", nil))
	fmt.Println(rec.Code, rec.Body.String())

	_ = gw.SetFunctionRoutes(nil)
	rec = httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "/hello/world", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output:
	// 200 hello, world
	// 404 application/problem+json
}

// Configuration errors name the file, the line and the setting.
func ExampleParseConfig() {
	_, err := gateway.ParseConfig("gateway.yaml", []byte(`
messaging:
  - name: nats
    request_timout_ms: 500
`))
	fmt.Println(err)

	_, err = gateway.ParseConfig("gateway.yaml", []byte(`
messaging: [{name: nats}]
plugins:
  - name: auth
    messaging: nats
    per_phase:
      request_filter: {on_error: retyr}
`))
	fmt.Println(err)
	// Output:
	// gateway.yaml:4: field "request_timout_ms" not found in type gateway.MessagingConfig
	// gateway.yaml:7: plugins[0].per_phase.request_filter.on_error: "retyr" is not one of continue|end|retry
}
