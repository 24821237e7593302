// Package natsconn is the one place the nylon binary gets NATS from: it either
// connects to existing servers (TLS, nkey seed, JWT creds, user/password or
// token; reconnecting forever, through refused credentials too) or starts an
// embedded nats-server with JetStream and connects to it in-process.
// Connection events and the embedded server's log go to log/slog, and
// Events counts disconnects, reconnects and slow consumers for metrics:
// nats.Conn.Stats counts no disconnects or slow consumers, and its
// Reconnects counts failed attempts too. A connection dialled elsewhere (a
// gateway messaging config's own) gets the same logging and counts through
// NewEvents and Events.Options.
//
// StoreHealth tells whether JetStream stores what the process writes: a
// stream whose store failed a write stays stopped until its server
// restarts, and says so only in the server's own health check and in the
// writes that go unacknowledged.
//
// It also enforces the security rule of DESIGN.md: outside the "dev"
// environment, external servers require TLS and an nkey seed or creds file,
// and the anonymous embedded server may only listen on a loopback address.
// Config.Validate's errors are *FieldError: they name the refused field (and
// the fields the reason refers to) by this package's names, and let a caller
// say them by its own instead (cmd/nylon names its flags and variables).
//
// It imports nothing from this project; cmd/nylon uses it and hands the
// *nats.Conn and jetstream.JetStream to the other packages, which never dial
// NATS themselves.
//
// # Example
//
//	c, err := natsconn.Connect(ctx, natsconn.Config{
//		Env:      "dev",
//		Embedded: natsconn.Embedded{Listen: "127.0.0.1:4222", DataDir: "./data"},
//	}, slog.Default())
//	if err != nil {
//		return err
//	}
//	defer c.Close(context.WithoutCancel(ctx)) // drain, then stop the embedded server
//	fmt.Println("nats --server", c.ClientURL(), "micro ls")
//	reg := registry.New(c.JetStream())
package natsconn
