package natsconn_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// Start an embedded server with JetStream on a random loopback port and use it.
func ExampleConnect() {
	dir, err := os.MkdirTemp("", "natsconn-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	c, err := natsconn.Connect(ctx, natsconn.Config{
		Env:      "dev",
		Embedded: natsconn.Embedded{Listen: "127.0.0.1:-1", DataDir: dir},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx)

	sub, _ := c.NC.Subscribe("greet", func(m *nats.Msg) { _ = m.Respond([]byte("hello " + string(m.Data))) })
	defer sub.Unsubscribe()
	reply, err := c.NC.Request("greet", []byte("nylon"), time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Data))
	fmt.Println("embedded:", c.Embedded(), "jetstream:", c.Health().JetStream)
	fmt.Println("store:", c.StoreHealth(ctx).Status)
	// Output:
	// hello nylon
	// embedded: true jetstream: true
	// store: ok
}

// Outside "dev", plaintext or anonymous NATS is refused before dialing.
func ExampleConfig_Validate() {
	cfg := natsconn.Config{Env: "prod", URLs: []string{"nats://nats.internal:4222"}}
	fmt.Println(cfg.Validate())
	// Output:
	// invalid nats config: insecure nats config: tls.ca_file: env "prod" requires TLS to NATS: set it, or use only tls:// or wss:// URLs in urls
}

// Read what a metrics collector exports of a connection: the disconnects,
// reconnects and slow consumers Events counted, and nats.go's own Stats.
func ExampleConn_Events() {
	dir, err := os.MkdirTemp("", "natsconn-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	c, err := natsconn.Connect(ctx, natsconn.Config{
		Env:      "dev",
		Embedded: natsconn.Embedded{Listen: "127.0.0.1:-1", DataDir: dir},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx)

	ev, st := c.Events().Counts(), c.NC.Stats()
	_ = c.NC.Publish("greet", []byte("hi"))
	fmt.Println("connected:", c.NC.IsConnected(), "published:", c.NC.Stats().OutMsgs-st.OutMsgs)
	fmt.Println("disconnects:", ev.Disconnects, "reconnects:", ev.Reconnects, "slow consumers:", ev.SlowConsumers, "dropped:", ev.DroppedMsgs)
	// Output:
	// connected: true published: 1
	// disconnects: 0 reconnects: 0 slow consumers: 0 dropped: 0
}
