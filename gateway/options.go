package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nylon-functions/nylon/internal/realip"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Option configures New. Options reject bad values; New reports the first.
type Option func(*options) error

type options struct {
	logger      *slog.Logger
	registerer  prometheus.Registerer
	env         string
	prefix      string
	conns       map[string]*nats.Conn
	transport   http.RoundTripper
	logWorkers  int
	logQueue    int
	seed        uint64
	seeded      bool
	ws          http.Handler
	chunk       int
	fnMessaging string
	replicas    int
	// proxies are the trusted proxies (WithTrustedProxies); the zero
	// value trusts nobody.
	proxies realip.Proxies
	// firstNodeWait bounds how long a call of a new function waits for
	// its first node, and firstNodeMaxWaiting how many calls of one
	// target wait at once (firstnode.go); set by tests.
	firstNodeWait       time.Duration
	firstNodeMaxWaiting int32
	// access is the access log's logger (WithAccessLog); nil: off.
	access *slog.Logger
}

func defaultOptions() options {
	return options{
		logger:     slog.Default(),
		logWorkers: defaultLoggingWorkers,
		logQueue:   defaultLoggingQueue,
		chunk:      defaultBodyChunk,
		replicas:   1,

		firstNodeWait:       defaultFirstNodeWait,
		firstNodeMaxWaiting: defaultFirstNodeMaxWaiting,
	}
}

// WithLogger sets the logger; default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("logger: nil")
		}
		o.logger = l
		return nil
	}
}

// WithReplicas sets the JetStream replicas of the dead-letter streams Start
// creates, 1 (the default) to MaxReplicas: 3 on a three-server cluster. A
// stream that exists keeps its replicas unless its messaging config sets
// dlq.replicas.
func WithReplicas(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxReplicas {
			return fmt.Errorf("replicas: %d out of range 1..%d", n, MaxReplicas)
		}
		o.replicas = n
		return nil
	}
}

// WithRegisterer registers the gateway's metrics on reg (a
// *prometheus.Registry usually). Without it metrics are collected but not
// exported. Registering two gateways on one registry fails.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) error {
		o.registerer = reg
		return nil
	}
}

// WithEnv sets the environment sent in the Nylon-Env header and used for
// the default subject prefix "nylon.{env}" of messaging configs without one.
// Default: taken from each messaging config's prefix ("nylon.prod" ->
// "prod"), else "dev".
func WithEnv(env string) Option {
	return func(o *options) error {
		if err := protocol.ValidateName(env); err != nil {
			return fmt.Errorf("env: %w", err)
		}
		o.env = env
		return nil
	}
}

// WithSubjectPrefix sets the subject prefix of messaging configs without a
// subject_prefix of their own, the implicit config included, so of the
// function routes too unless WithFunctionMessaging picks a config that sets
// one. Default "nylon.{env}" (WithEnv). A config's own subject_prefix wins.
//
//	gw, err := gateway.New(cfg, nc, gateway.WithEnv("prod"), gateway.WithSubjectPrefix("acme.fn"))
func WithSubjectPrefix(prefix string) Option {
	return func(o *options) error {
		if err := protocol.ValidatePrefix(prefix); err != nil {
			return err
		}
		o.prefix = prefix
		return nil
	}
}

// WithMessagingConn gives the messaging config name its own connection
// (dialled with MessagingConfig.Connect, say); configs without one use the
// connection passed to New. The caller keeps ownership of nc.
func WithMessagingConn(name string, nc *nats.Conn) Option {
	return func(o *options) error {
		if nc == nil {
			return fmt.Errorf("messaging[%s] conn: nil", name)
		}
		if o.conns == nil {
			o.conns = map[string]*nats.Conn{}
		}
		o.conns[name] = nc
		return nil
	}
}

// WithTransport sets the RoundTripper for upstream origins; default an
// http.Transport with http.DefaultTransport's timeouts, 256 idle
// connections per host and no proxy from the environment. A route's
// response_header_timeout_ms runs from httptrace's WroteRequest, which
// http.Transport reports; a RoundTripper that does not report it leaves
// the routes with only its own timeouts.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("transport: nil")
		}
		o.transport = rt
		return nil
	}
}

// WithLoggingPool sizes the asynchronous logging phase: workers concurrent
// calls and a queue of queue requests; default 4 and 1024. A request whose
// logging calls do not fit the queue has them dropped (and counted in
// nylon_gateway_logging_dropped_total): logging never blocks a request.
func WithLoggingPool(workers, queue int) Option {
	return func(o *options) error {
		if workers < 1 || queue < 0 {
			return fmt.Errorf("logging pool: %d workers, queue %d: want workers >= 1, queue >= 0", workers, queue)
		}
		o.logWorkers, o.logQueue = workers, queue
		return nil
	}
}

// WithSeed seeds the retry jitter, for reproducible backoff; default a
// random seed per gateway.
func WithSeed(seed uint64) Option {
	return func(o *options) error {
		o.seed, o.seeded = seed, true
		return nil
	}
}

// WithWebSocket hands upgrade requests on routes marked websocket to h (the
// WebSocket edge). RouteOf(r.Context()) tells h which route matched.
func WithWebSocket(h http.Handler) Option {
	return func(o *options) error {
		o.ws = h
		return nil
	}
}

// WithBodyChunkSize sets the size of the upstream body chunks handed to
// response_body_filter; default 32 KiB.
func WithBodyChunkSize(n int) Option {
	return func(o *options) error {
		if n < 1 || n > protocol.DefaultMaxPayload/2 {
			return fmt.Errorf("body chunk size %d: want 1..%d", n, protocol.DefaultMaxPayload/2)
		}
		o.chunk = n
		return nil
	}
}

// WithFunctionMessaging names the messaging config that carries calls for
// SetFunctionRoutes routes; default the first one.
func WithFunctionMessaging(name string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("function messaging: empty name")
		}
		o.fnMessaging = name
		return nil
	}
}

// WithTrustedProxies names the load balancers and proxies in front of the
// gateway, by address (a /32 or /128) or CIDR prefix, IPv4 or IPv6. Default
// none: every request's client is its TCP peer, and X-Forwarded-* headers
// the client sent are neither believed nor passed on.
//
// A request whose TCP peer is in one of them gets its client address from
// X-Forwarded-For, walked from the right past trusted addresses (nginx's
// set_real_ip_from with real_ip_recursive on): functions read it
// (ReadRequestClientIP), the WebSocket edge gets it (RouteInfo.ClientIP),
// the scheme is the one a single X-Forwarded-Proto of "https" or "http"
// names (ReadRequestScheme, RouteInfo.Scheme: the balancer terminated
// TLS), and upstreams get the inbound X-Forwarded-For with the peer
// appended and the inbound X-Forwarded-Proto and X-Forwarded-Host.
// Anything inside a trusted prefix can set the client address: trust only
// the proxies' own networks.
//
//	gw, err := gateway.New(cfg, nc, gateway.WithTrustedProxies("10.0.0.0/8", "fd00::/8"))
func WithTrustedProxies(entries ...string) Option {
	return func(o *options) error {
		p, err := realip.Parse(entries)
		if err != nil {
			return fmt.Errorf("trusted proxies: %w", err)
		}
		o.proxies = p
		return nil
	}
}

// WithAccessLog writes one line per request to l, at INFO with the message
// "gateway: access": method, host, path, route, function, status, bytes,
// duration, client_ip, request_id, traceparent and user_agent (see
// docs/GATEWAY.md, Access log). Every request gets its line, whatever its
// outcome (404, 400, 413, a client gone, a WebSocket at its end), and the
// lines are never sampled. Default off; nil turns it off.
//
//	gw, err := gateway.New(cfg, nc, gateway.WithLogger(log), gateway.WithAccessLog(log))
//
// # Notes
//
// The query string is left out: it often carries tokens and signatures
// (OAuth codes, presigned URLs), which logs would keep and spread. l's
// level must let INFO through, or no line is written (New warns).
func WithAccessLog(l *slog.Logger) Option {
	return func(o *options) error {
		o.access = l
		return nil
	}
}
