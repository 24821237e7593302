package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/registry"
)

// embeddedNATS starts a throwaway NATS server with JetStream for an example.
func embeddedNATS() (*server.Server, func()) {
	dir, err := os.MkdirTemp("", "nylon-example-")
	if err != nil {
		panic(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		panic("nats not ready")
	}
	return s, func() { s.Shutdown(); s.WaitForShutdown(); os.RemoveAll(dir) }
}

func ExampleNode() {
	s, stop := embeddedNATS()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, _ := nats.Connect(s.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	reg, err := registry.New(ctx, js)
	if err != nil {
		panic(err)
	}

	node, err := platform.NewNode(platform.Config{
		NATS:     nc,
		Registry: reg,
		NodeID:   "example",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	h := node.Health()
	fmt.Println(h.Status, h.NodeID, h.NATS.Connected, len(h.Functions))
	if err := node.Drain(ctx); err != nil {
		panic(err)
	}
	fmt.Println(node.Health().State)
	// Output:
	// ok example true 0
	// stopped
}

func ExampleAdmin() {
	s, stop := embeddedNATS()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, _ := nats.Connect(s.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	reg, err := registry.New(ctx, js)
	if err != nil {
		panic(err)
	}
	admin, err := platform.NewAdmin(ctx, platform.AdminConfig{
		Registry: reg,
		NATS:     nc,
		Token:    "example-token",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer admin.Drain(ctx)
	srv := httptest.NewServer(admin.Handler())
	defer srv.Close()

	// Upload something that is not a WebAssembly module.
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/functions/hello?route=/hello", strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer example-token")
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var p platform.Problem
	_ = json.NewDecoder(resp.Body).Decode(&p)
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Println(p.Type)
	// Output:
	// 422 application/problem+json
	// https://nylon.dev/problems/invalid-module
}
