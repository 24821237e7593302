package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn is a NATS client connection and, in embedded mode, the server it runs
// against. It owns both: Close drains the connection and then shuts the
// embedded server down.
type Conn struct {
	// NC is the client connection. Do not Close or Drain it directly; use
	// Conn.Close so that the embedded server stops after it.
	NC *nats.Conn
	// Server is the embedded nats-server, or nil when connected to
	// external servers.
	Server *server.Server

	js     jetstream.JetStream
	store  *storeWatch // what StoreHealth reports
	events *Events     // disconnects, reconnects and slow consumers, logged and counted
	log    *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// Connect validates cfg and connects: to cfg.URLs when given, otherwise to
// an embedded nats-server with JetStream that it starts first. ctx bounds
// the start-up only; the connection lives until Close. A nil logger discards
// logs.
//
// The first connection attempt is not retried, so a wrong URL or credential
// fails here with the server's error (for example nats.ErrAuthorization);
// once connected, the client reconnects (forever by default), through
// refused credentials too: it comes back once the servers accept them.
func Connect(ctx context.Context, cfg Config, logger *slog.Logger) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{log: logger, store: &storeWatch{}, events: NewEvents(logger)}
	opts := c.clientOptions(cfg)
	var err error
	if cfg.IsEmbedded() {
		c.Server, err = startEmbedded(ctx, cfg.Embedded, logger.With("component", "nats-server"))
		if err != nil {
			return nil, err
		}
		c.NC, err = connectInProcess(c.Server, opts)
		if err != nil {
			shutdownServer(c.Server)
			return nil, err
		}
	} else {
		extra, authErr := authOptions(cfg)
		if authErr != nil {
			return nil, authErr
		}
		c.NC, err = connectExternal(ctx, cfg.URLs, append(opts, extra...))
		if err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(c.NC)
	if err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	c.js = watchedJS{JetStream: js, w: c.store}
	return c, nil
}

// JetStream returns the JetStream context of the connection, created once.
// The key-value and object stores it opens report whether JetStream
// acknowledged their writes to StoreHealth.
func (c *Conn) JetStream() jetstream.JetStream { return c.js }

// ClientURL is the URL other processes (the nats CLI, more nylon processes)
// use to reach the same NATS: the embedded server's listen URL, or the
// external server currently connected to, without credentials.
func (c *Conn) ClientURL() string {
	if c.Server != nil {
		return c.Server.ClientURL()
	}
	return c.NC.ConnectedUrlRedacted()
}

// Events is what the connection's callbacks counted: disconnects,
// reconnects and slow consumers. With NC.Stats (messages, bytes) it is what
// a metrics collector reads of the connection.
func (c *Conn) Events() *Events { return c.events }

// Embedded reports whether the connection runs against an embedded server.
func (c *Conn) Embedded() bool { return c.Server != nil }

// Close drains the connection (pending subscriptions finish their messages,
// pending publishes are flushed) and waits until it is closed or ctx is
// done, in which case it closes it at once. Then it shuts the embedded
// server down and waits for it, again bounded by ctx. Calling Close again
// returns the first call's result.
func (c *Conn) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.close(ctx) })
	return c.closeErr
}

func (c *Conn) close(ctx context.Context) error {
	var errs []error
	if err := Drain(ctx, c.NC); err != nil {
		errs = append(errs, err)
	}
	if c.Server != nil {
		done := make(chan struct{})
		go func() {
			shutdownServer(c.Server)
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("shut down embedded nats server: %w", ctx.Err()))
		}
	}
	return errors.Join(errs...)
}

// Drain drains nc (its subscriptions finish the messages they hold, its
// publishes are flushed) and waits until it is closed or ctx is done, when
// it closes it at once and returns ctx's error. nats.go refuses to drain a
// connection that is reconnecting (its servers unreachable: serve's
// connections reconnect for as long as they are open) or already closed;
// nothing can be flushed then, so Drain closes it, and that is no failure.
// Close uses it for the process's own connection, serve for the own
// connections of gateway messaging configs.
func Drain(ctx context.Context, nc *nats.Conn) error {
	closed := nc.StatusChanged(nats.CLOSED)
	defer nc.RemoveStatusListener(closed)
	if err := nc.Drain(); err != nil {
		nc.Close()
		return nil
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("drain nats connection: %w", ctx.Err())
	}
}

// Health is a snapshot of the connection for health endpoints.
type Health struct {
	Status        string `json:"status"` // nats.go's status: CONNECTED, RECONNECTING, ...
	Connected     bool   `json:"connected"`
	URL           string `json:"url"`
	ServerName    string `json:"server_name,omitempty"`
	ServerVersion string `json:"server_version,omitempty"`
	Embedded      bool   `json:"embedded"`
	JetStream     bool   `json:"jetstream,omitempty"` // known for the embedded server only
	Reconnects    uint64 `json:"reconnects"`          // times it came back, as Events counts them
}

// Health reports the connection state without a round trip to the server.
func (c *Conn) Health() Health {
	st := c.NC.Status()
	h := Health{
		Status:        st.String(),
		Connected:     st == nats.CONNECTED,
		URL:           c.ClientURL(),
		ServerName:    c.NC.ConnectedServerName(),
		ServerVersion: c.NC.ConnectedServerVersion(),
		Embedded:      c.Server != nil,
		Reconnects:    c.events.reconnects.Load(),
	}
	if c.Server != nil {
		h.JetStream = c.Server.JetStreamEnabled()
	}
	return h
}

// clientOptions are the options of every connection: name, reconnects and
// the slog-backed event handlers, which count what Events counts.
//
// IgnoreAuthErrorAbort keeps the reconnects going when the servers refuse
// the credentials: nats.go would otherwise close the connection for good at
// the second refusal in a row, which a credential rotation, an account or
// user JWT update on the servers, or an operator's mistake fixed minutes
// later all cause, leaving the process up with a dead connection until a
// restart. Each refusal is logged (Events), once per reconnect wait.
func (c *Conn) clientOptions(cfg Config) []nats.Option {
	maxReconnects := cfg.MaxReconnects
	if maxReconnects <= 0 {
		maxReconnects = -1
	}
	wait := cfg.ReconnectWait
	if wait == 0 {
		wait = DefaultReconnectWait
	}
	opts := append([]nats.Option{
		nats.MaxReconnects(maxReconnects),
		nats.ReconnectWait(wait),
		nats.IgnoreAuthErrorAbort(),
		nats.ClosedHandler(func(_ *nats.Conn) { c.log.Debug("nats connection closed") }),
	}, c.events.Options()...)
	if cfg.Name != "" {
		opts = append(opts, nats.Name(cfg.Name))
	}
	if cfg.ReconnectJitter > 0 {
		opts = append(opts, nats.ReconnectJitter(cfg.ReconnectJitter, cfg.ReconnectJitter))
	}
	return opts
}
