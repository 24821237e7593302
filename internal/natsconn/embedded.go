package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyTimeout bounds how long the embedded server may take to listen and
// start JetStream (recovering a large store can take seconds).
const readyTimeout = 10 * time.Second

// startEmbedded starts a nats-server with JetStream in e.DataDir, listening on
// e.Listen, logging through log. It returns once the server accepts clients
// and JetStream runs, or fails with the server's own fatal message.
func startEmbedded(ctx context.Context, e Embedded, log *slog.Logger) (*server.Server, error) {
	host, port, err := splitListen(e.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	if port == 0 {
		// nats-server reads port 0 as "default 4222"; -1 is its "random".
		port = server.RANDOM_PORT
	}
	maxPayload := e.MaxPayload
	if maxPayload == 0 {
		maxPayload = DefaultMaxPayload
	}
	opts := &server.Options{
		ServerName: e.ServerName,
		Host:       host,
		Port:       port,
		NoSigs:     true, // signals belong to the nylon process, not the server
		JetStream:  true,
		StoreDir:   e.DataDir,
		MaxPayload: maxPayload,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	sl := newServerLogger(log)
	bg := context.Background()
	s.SetLoggerV2(sl, log.Enabled(bg, slog.LevelDebug), log.Enabled(bg, LevelTrace), false)

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	// Start returns once the listener runs and JetStream is enabled (or
	// failed); it must have returned before Shutdown, or a late JetStream
	// start could write to the store after the server was shut down.
	s.Start()
	if err := waitReady(ctx, s, sl); err != nil {
		shutdownServer(s)
		return nil, fmt.Errorf("embedded nats server on %s: %w", listenOrDefault(e.Listen), err)
	}
	if !s.JetStreamEnabled() {
		shutdownServer(s)
		return nil, fmt.Errorf("embedded nats server: JetStream did not start with store %s", e.DataDir)
	}
	return s, nil
}

// waitReady polls the server until it accepts clients, a fatal error is
// logged (a taken port, an unusable store), ctx ends or readyTimeout passes.
// ReadyForConnections alone would wait out its whole timeout on a fatal.
func waitReady(ctx context.Context, s *server.Server, sl *serverLogger) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		// A fatal during Start (JetStream) may still be followed by a
		// working listener, so check it before readiness.
		select {
		case <-sl.fired:
			return fmt.Errorf("%s", sl.fatalMessage())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if s.ReadyForConnections(50 * time.Millisecond) {
			select {
			case <-sl.fired:
				return fmt.Errorf("%s", sl.fatalMessage())
			default:
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready for connections after %v", readyTimeout)
		}
	}
}

// connectInProcess connects to s without a socket: the embedded server is in
// this process, so loopback TCP would only add latency.
//
// The connection has no write timeout (nats.go's FlusherTimeout, 1 minute by
// default): on the in-process pipe each timed write arms and stops a timer
// twice, a cost on every flush, to guard against a peer that cannot stall
// short of the whole process; a server shutdown closes the pipe and fails
// the write at once.
func connectInProcess(s *server.Server, opts []nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(s.ClientURL(), append(opts, nats.InProcessServer(s), nats.FlusherTimeout(0))...)
	if err != nil {
		return nil, fmt.Errorf("nats connect in-process to embedded server: %w", err)
	}
	return nc, nil
}

func shutdownServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

func listenOrDefault(listen string) string {
	if listen == "" {
		return DefaultListen
	}
	return listen
}
