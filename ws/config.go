package ws

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/protocol"
)

// CheckOriginPattern reports whether p, an entry of Config.OriginPatterns,
// is a pattern the WebSocket library can use: it lower-cases p and
// path.Matches it against each Origin, so a pattern path.Match cannot parse
// would only show as a 403 at every handshake.
func CheckOriginPattern(p string) error {
	// path.Match checks the whole pattern even when the name does not match.
	_, err := path.Match(strings.ToLower(p), "")
	return err
}

// ErrInvalidConfig is wrapped by every Config validation failure.
var ErrInvalidConfig = errors.New("invalid ws config")

// Defaults applied by New to zero Config fields.
const (
	DefaultEventTimeout   = 5 * time.Second
	DefaultEventRetries   = 2
	DefaultPingInterval   = 30 * time.Second
	DefaultPingTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxMessageSize = 64 << 10
	DefaultSendQueue      = 256
	// DefaultSendQueueBytes is raised to twice the NATS server's
	// max_payload when that is larger (see Config.SendQueueBytes).
	DefaultSendQueueBytes = 4 << 20
	DefaultMaxRooms       = 128
	DefaultEventQueue     = 64
	DefaultMaxConnections = 10_000
)

// Config is the edge's settings: a plain struct validated once by New. Zero
// fields take the Default* values; negative durations disable a feature
// where noted.
type Config struct {
	// Env names the deployment environment, sent as the Nylon-Env header.
	// Default protocol.DefaultEnv ("dev").
	Env string
	// SubjectPrefix is the prefix of every subject. Default protocol.Prefix(Env).
	SubjectPrefix string
	// EdgeID makes connection ids unique across edges: "{EdgeID}-{n}". It must
	// not contain '.', whitespace or wildcards. Default: 8 random hex digits.
	EdgeID string

	// EventTimeout bounds one event's request/reply. Default 5s.
	EventTimeout time.Duration
	// EventRetries is how many times an event is re-sent when no node
	// answers the subject (no responders), with a doubling backoff from
	// 50ms. Timeouts are never retried: the handler may have run. Default 2;
	// -1 disables retries.
	EventRetries int
	// EventQueue is how many received messages may wait for their event
	// per connection; when full the edge stops reading from that client
	// (TCP back-pressure). Default 64.
	EventQueue int

	// PingInterval is how often the edge pings each client. Default 30s;
	// negative disables keep-alive.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take before the peer is considered
	// dead and the connection is dropped. Default 10s.
	PingTimeout time.Duration
	// WriteTimeout bounds one frame write to a client. Default 10s.
	WriteTimeout time.Duration

	// MaxMessageSize is the largest message a client may send, in bytes; a
	// larger one closes the connection with 1009. Default 64 KiB.
	MaxMessageSize int64
	// SendQueue is how many outgoing messages may wait per connection. A
	// client whose queue is full is closed with 1008. Default 256.
	SendQueue int
	// SendQueueBytes bounds the bytes of those messages (the one being
	// written included): a client that would go over it is closed with
	// 1008 too, so that a peer that stops reading cannot make the edge
	// hold SendQueue messages of up to NATS max_payload each. A message
	// is always accepted into an empty queue. Default 4 MiB, or twice the
	// NATS server's max_payload when that is larger, so that the sends of
	// one event reply (at most max_payload) always fit.
	SendQueueBytes int64
	// MaxRooms is how many rooms one connection may be in at once; a join
	// op beyond it is logged and skipped. Every room with a local member
	// is a NATS subscription, so without a bound one client of a function
	// that joins rooms on request could make the edge (and every NATS
	// server of the cluster) hold any number of them. Default 128.
	MaxRooms int
	// MaxConnections caps open connections on this edge; over it upgrades
	// get HTTP 503. Default 10000.
	MaxConnections int

	// OriginPatterns are the foreign origins allowed to connect (host
	// patterns as in path.Match, or "scheme://host" patterns). The request's
	// own host is always allowed; by default only it is.
	OriginPatterns []string
	// InsecureSkipVerify accepts any Origin. Only for development.
	InsecureSkipVerify bool

	// DisableDeadLetters stops publishing events that failed for a
	// transport reason (timeout, no responders, a node's decode, overload
	// or internal error) to protocol.DLQSubject(prefix, function,
	// PhaseEvent). A handler's own Error is never dead-lettered.
	DisableDeadLetters bool
}

// Validate reports the first invalid field, wrapping ErrInvalidConfig. It
// checks the values as given; New applies defaults first.
func (c *Config) Validate() error {
	if c.SubjectPrefix != "" {
		if err := protocol.ValidatePrefix(c.SubjectPrefix); err != nil {
			return fmt.Errorf("%w: subject_prefix: %w", ErrInvalidConfig, err)
		}
	}
	if c.EdgeID != "" {
		if err := protocol.ValidateRoom(c.EdgeID); err != nil {
			return fmt.Errorf("%w: edge_id: %w", ErrInvalidConfig, err)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"event_timeout", c.EventTimeout}, {"ping_timeout", c.PingTimeout}, {"write_timeout", c.WriteTimeout}} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s: %v is negative", ErrInvalidConfig, f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"max_message_size", c.MaxMessageSize}, {"send_queue", int64(c.SendQueue)}, {"send_queue_bytes", c.SendQueueBytes}, {"max_rooms", int64(c.MaxRooms)}, {"event_queue", int64(c.EventQueue)}, {"max_connections", int64(c.MaxConnections)}} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s: %d is negative", ErrInvalidConfig, f.name, f.v)
		}
	}
	if c.EventRetries < -1 {
		return fmt.Errorf("%w: event_retries: %d (want -1 to disable, or >= 0)", ErrInvalidConfig, c.EventRetries)
	}
	for _, p := range c.OriginPatterns {
		if err := CheckOriginPattern(p); err != nil {
			return fmt.Errorf("%w: origin_patterns: %q: %w", ErrInvalidConfig, p, err)
		}
	}
	return nil
}

// withDefaults returns a copy with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Env == "" {
		c.Env = protocol.DefaultEnv
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = protocol.Prefix(c.Env)
	}
	if c.EventTimeout == 0 {
		c.EventTimeout = DefaultEventTimeout
	}
	switch c.EventRetries {
	case 0:
		c.EventRetries = DefaultEventRetries
	case -1:
		c.EventRetries = 0
	}
	if c.EventQueue == 0 {
		c.EventQueue = DefaultEventQueue
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.SendQueueBytes == 0 {
		c.SendQueueBytes = DefaultSendQueueBytes
	}
	if c.MaxRooms == 0 {
		c.MaxRooms = DefaultMaxRooms
	}
	c.OriginPatterns = append([]string(nil), c.OriginPatterns...)
	return c
}

// Option sets a secondary, non-wire setting of an Edge.
type Option func(*options) error

type options struct {
	logger   *slog.Logger
	registry prometheus.Registerer
	dlqSink  func(*nats.Msg) bool
}

// WithLogger sets the logger for connection, event and room records.
// Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: logger: nil", ErrInvalidConfig)
		}
		o.logger = l
		return nil
	}
}

// WithRegistry registers the edge's metrics on reg. Edges sharing a
// registry share the collectors (all gauges move by Inc/Dec, so the sums
// stay right). Without it metrics are counted but not exported.
func WithRegistry(reg prometheus.Registerer) Option {
	return func(o *options) error {
		if reg == nil {
			return fmt.Errorf("%w: registry: nil", ErrInvalidConfig)
		}
		o.registry = reg
		return nil
	}
}

// WithDeadLetterSink hands every dead letter to sink instead of publishing
// it with a core NATS publish, which the server drops without a word while
// the dead-letter stream has no leader (a NATS server lost, an election:
// the moments that make dead letters). In one process with the gateway,
// pass (*gateway.Gateway).StoreDeadLetter, so the letters are stored with
// acknowledged JetStream publishes and retried like the gateway's own.
//
// sink is called on the connection's event goroutine and must not block.
// It owns the message it is given (Data is a copy). true means accepted:
// the event counts in nylon_ws_dead_letters_total; false means lost: it is
// logged at ERROR ("ws dead letter lost") and counted in
// nylon_ws_dead_letters_lost_total. Config.DisableDeadLetters still turns
// dead letters off.
func WithDeadLetterSink(sink func(msg *nats.Msg) bool) Option {
	return func(o *options) error {
		if sink == nil {
			return fmt.Errorf("%w: dead letter sink: nil", ErrInvalidConfig)
		}
		o.dlqSink = sink
		return nil
	}
}
