package registry_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// embeddedJetStream starts a JetStream server on a random loopback port (as
// testutil.RunNATS does, which needs a *testing.T) and connects to it.
func embeddedJetStream() (jetstream.JetStream, func(), error) {
	dir, err := os.MkdirTemp("", "registry-example")
	if err != nil {
		return nil, nil, err
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: dir,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("nats server not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		s.Shutdown()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	stop := func() {
		nc.Close()
		s.Shutdown()
		s.WaitForShutdown()
		os.RemoveAll(dir)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return js, stop, nil
}

func Example() {
	js, stop, err := embeddedJetStream()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()

	reg, err := registry.New(ctx, js, registry.WithEnv("dev"))
	if err != nil {
		log.Fatal(err)
	}
	spec := registry.Spec{
		Name:   "hello",
		Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter),
		Routes: []string{"/hello"},
		Limits: registry.Limits{TimeoutMS: 500},
	}
	// Bytes already checked by wasmhost.Validate in a real deployment.
	for _, module := range []string{"\x00asm v1", "\x00asm v2"} {
		rec, err := reg.Deploy(ctx, spec, []byte(module))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("deployed %s v%d (%d bytes, sha256 %s...)\n", rec.Name, rec.Version, rec.Size, rec.SHA256[:12])
	}

	rec, err := reg.Rollback(ctx, "hello", 0) // back to the previous version
	if err != nil {
		log.Fatal(err)
	}
	module, err := reg.Module(ctx, rec) // verified against rec.SHA256
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("rolled back to v%d: %q\n", rec.Version, module)

	versions, err := reg.Versions(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range versions {
		fmt.Printf("v%d active=%v routes=%v phases=%v\n", v.Version, v.Active, v.Routes, v.Phases)
	}
	// Output:
	// deployed hello v1 (7 bytes, sha256 54b694019c65...)
	// deployed hello v2 (7 bytes, sha256 5fed42394328...)
	// rolled back to v1: "\x00asm v1"
	// v2 active=false routes=[/hello] phases=[request_filter]
	// v1 active=true routes=[/hello] phases=[request_filter]
}

func ExampleRegistry_Watch() {
	js, stop, err := embeddedJetStream()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	reg, err := registry.New(ctx, js)
	if err != nil {
		log.Fatal(err)
	}
	spec := registry.Spec{Name: "auth", Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter)}
	if _, err := reg.Deploy(ctx, spec, []byte("\x00asm 1")); err != nil {
		log.Fatal(err)
	}

	w, err := reg.Watch(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()

	changes := func() {
		if _, err := reg.Deploy(ctx, spec, []byte("\x00asm 2")); err != nil {
			log.Fatal(err)
		}
		if err := reg.Delete(ctx, "auth"); err != nil {
			log.Fatal(err)
		}
	}
	for ev := range w.Updates() {
		switch ev.Type {
		case registry.EventPut:
			fmt.Printf("load %s v%d\n", ev.Name, ev.Record.Version)
		case registry.EventDelete:
			fmt.Printf("stop %s\n", ev.Name)
			return
		case registry.EventReady:
			fmt.Println("initial state loaded")
			changes()
		}
	}
	// Output:
	// load auth v1
	// initial state loaded
	// load auth v2
	// stop auth
}
