package gateway

import (
	"time"

	"github.com/nylon-functions/nylon/protocol"
)

// Defaults applied where the configuration leaves a value unset.
const (
	DefaultRequestTimeout   = 800 * time.Millisecond
	DefaultRetryMax         = 0
	DefaultBackoffInitial   = 50 * time.Millisecond
	DefaultBackoffMax       = 250 * time.Millisecond
	DefaultMaxInflight      = 1024
	DefaultMaxBodyBytes     = protocol.DefaultMaxPayload
	DefaultDLQMaxMsgs       = 100_000
	DefaultDLQMaxBytes      = 1 << 30
	DefaultDLQMaxAge        = 7 * 24 * time.Hour
	MaxReplicas             = 5 // JetStream's own limit
	DefaultMessagingType    = "nats"
	DefaultPluginType       = "messaging"
	DefaultOverflowPolicy   = OverflowQueue
	DefaultJitter           = JitterFull
	DefaultOnError          = OnErrorEnd
	DefaultLoggingOnError   = OnErrorContinue
	defaultMessagingName    = "default"
	maxConfiguredTimeoutMs  = 10 * 60 * 1000 // ten minutes: anything longer is a typo
	maxConfiguredRetries    = 100
	maxConfiguredBackoffMs  = 10 * 60 * 1000
	maxConfiguredInflight   = 1 << 20
	defaultLoggingWorkers   = 4
	defaultLoggingQueue     = 1024
	defaultBodyChunk        = 32 << 10
	maxLoggedBody           = 64 << 10
	unservedPhaseTTL        = time.Second
	overloadedRetryAfterSec = "1"
)

// DefaultResponseHeaderTimeout is how long an upstream has to start its
// answer (RouteConfig.ResponseHeaderTimeoutMs): nginx's proxy_read_timeout.
const DefaultResponseHeaderTimeout = 60 * time.Second

// Config is the gateway's configuration: the seed's `messaging` and
// `plugins` blocks (its "Extended Configuration Example" loads unchanged)
// plus `routes`. Load it with ParseConfig or LoadConfig, which decode strictly
// and validate; a Config built in Go is validated by New.
//
// Policies resolve per plugin and phase: a per_phase value overrides the
// plugin's, which overrides the messaging config's, which overrides the
// package defaults.
type Config struct {
	Messaging []MessagingConfig `yaml:"messaging"`
	Plugins   []PluginConfig    `yaml:"plugins"`
	Routes    []RouteConfig     `yaml:"routes"`
}

// MessagingConfig is one NATS connection profile and its caller defaults.
type MessagingConfig struct {
	Name string `yaml:"name"`
	// Type must be "nats" (the default when empty).
	Type string `yaml:"type"`
	// Servers are NATS URLs for callers that dial with Connect; ApplyEnv
	// replaces them from NYLON_NATS_URLS. Empty: the config calls over the
	// connection given to New (in `nylon serve`, serve's own).
	Servers []string `yaml:"servers"`
	// SubjectPrefix is "nylon.{env}"; default "nylon.dev".
	SubjectPrefix string `yaml:"subject_prefix"`
	// RequestTimeoutMs is the per-attempt timeout of a phase call; 0 = 800.
	RequestTimeoutMs int `yaml:"request_timeout_ms"`
	// MaxInflight bounds concurrent phase calls over this config; 0 = 1024.
	MaxInflight int `yaml:"max_inflight"`
	// OverflowPolicy says what a call does when MaxInflight are in flight:
	// queue (wait for a slot, at most the call's timeout), reject (fail at
	// once with 503) or shed (skip the plugin as if on_error were continue).
	OverflowPolicy OverflowPolicy `yaml:"overflow_policy"`
	Retry          RetryConfig    `yaml:"retry"`
	TLS            TLSConfig      `yaml:"tls"`
	Auth           AuthConfig     `yaml:"auth"`
	DLQ            DLQConfig      `yaml:"dlq"`
}

// RetryConfig is a retry policy; nil fields inherit from the enclosing level.
// Only calls whose on_error is "retry" make retry attempts.
type RetryConfig struct {
	// Max is the number of extra attempts after the first.
	Max *int `yaml:"max"`
	// BackoffMsInitial is the wait before the first retry; it doubles per
	// retry up to BackoffMsMax.
	BackoffMsInitial *int `yaml:"backoff_ms_initial"`
	BackoffMsMax     *int `yaml:"backoff_ms_max"`
	// Jitter is full (wait uniformly in [0, d]), equal (d/2 + [0, d/2]) or
	// none; default full.
	Jitter Jitter `yaml:"jitter"`
}

// TLSConfig is the TLS material for connections built by Connect.
type TLSConfig struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// AuthConfig is the NATS credential for connections built by Connect; with
// Enabled, exactly one of NKey, CredsFile, User/Password or Token is set.
// User/Password and Token are dev-only: outside dev, CheckSecurity accepts
// only NKey or CredsFile.
type AuthConfig struct {
	Enabled bool `yaml:"enabled"`
	// NKey is an nkey user seed ("SU...") or the path of a file holding one.
	NKey      string `yaml:"nkey"`
	CredsFile string `yaml:"creds_file"`
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
	Token     string `yaml:"token"`
}

// DLQConfig shapes the JetStream stream that captures dead letters under
// this config's prefix ({prefix}.dlq.>).
type DLQConfig struct {
	// Disabled stops publishing dead letters (and creating the stream).
	Disabled bool `yaml:"disabled"`
	// MaxMsgs bounds the stream (oldest dropped first); 0 = 100000.
	MaxMsgs int64 `yaml:"max_msgs"`
	// MaxBytes bounds the stream's size on disk (oldest dropped first);
	// 0 = 1 GiB. A dead letter carries the whole request, body included,
	// so without it failing requests from any HTTP client could fill the
	// JetStream store (100000 requests of 8 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAgeHours bounds the age of dead letters; 0 = 168 (7 days).
	MaxAgeHours int `yaml:"max_age_hours"`
	// Replicas is the stream's JetStream replicas, 1 to 5. 0: a new stream
	// gets the gateway's (WithReplicas, `nylon serve --replicas`) and an
	// existing one keeps its own; set, it is applied to an existing stream
	// too.
	Replicas int `yaml:"replicas"`
}

// PluginConfig is one plugin: a function whose phase subjects the gateway
// calls with the plugin's policies.
type PluginConfig struct {
	Name string `yaml:"name"`
	// Type must be "messaging" (the default when empty).
	Type string `yaml:"type"`
	// Messaging names the MessagingConfig to call through.
	Messaging string `yaml:"messaging"`
	// Group is the queue group the function's nodes serve in; informational
	// on the caller side (logged as "queue"), the nodes choose it.
	Group string `yaml:"group"`
	// Function is the function whose subjects are called; default Name.
	Function string `yaml:"function"`
	// PerPhase lists the phases to call, keyed request_filter,
	// response_filter, response_body_filter and logging, with policy
	// overrides. When empty, all four phases are called, and a phase no node
	// serves (NoResponder) is skipped silently.
	PerPhase    map[string]PhasePolicy `yaml:"per_phase"`
	PhasePolicy `yaml:",inline"`
	// Config is handed to the handlers in the invocation; a route's config
	// is merged over it.
	Config map[string]string `yaml:"config"`
}

// PhasePolicy is the caller policy of one phase (or, inline in
// PluginConfig, of every phase of a plugin). Zero values inherit.
type PhasePolicy struct {
	// TimeoutMs is the per-attempt timeout.
	TimeoutMs int `yaml:"timeout_ms"`
	// OnError is continue (skip the plugin), end (fail the request) or retry
	// (retry, then end). Default end, continue for logging.
	OnError OnError     `yaml:"on_error"`
	Retry   RetryConfig `yaml:"retry"`
	// MaxPayloadBytes bounds the encoded request; 0 = 1 MiB.
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
}

// RouteConfig maps a path to a chain of plugins in front of an origin: an
// upstream URL or a function.
type RouteConfig struct {
	// Path is a chi pattern: "/api/*", "/users/{id}".
	Path string `yaml:"path"`
	// Methods restricts the route; empty = every method.
	Methods []string `yaml:"methods"`
	// Upstream is the origin URL ("http://127.0.0.1:9000"); requests are
	// proxied with their path appended to the URL's path.
	Upstream string `yaml:"upstream"`
	// Function makes a function the origin: its request_filter must End the
	// request. It names a function, or a plugin entry whose function,
	// messaging and policies are then used.
	Function string `yaml:"function"`
	// Messaging names the MessagingConfig of a Function origin that is not a
	// plugin entry; default the first one.
	Messaging string `yaml:"messaging"`
	// Plugins run in order.
	Plugins []string `yaml:"plugins"`
	// Config is merged over each plugin's config in the invocation.
	Config map[string]string `yaml:"config"`
	// WebSocket marks a route whose upgrade requests go to the WebSocket
	// edge (WithWebSocket).
	WebSocket bool `yaml:"websocket"`
	// StripPrefix is removed from the path before it goes upstream.
	StripPrefix string `yaml:"strip_prefix"`
	// MaxBodyBytes bounds the request body; 0 = 1 MiB. Larger bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ResponseHeaderTimeoutMs bounds how long the Upstream has to send its
	// response headers once it has the whole request; 0 = 60000 (nginx's
	// proxy_read_timeout). Beyond it the request is answered 504.
	ResponseHeaderTimeoutMs int `yaml:"response_header_timeout_ms"`
}

// OnError is a plugin's failure policy.
type OnError string

const (
	OnErrorContinue OnError = "continue"
	OnErrorEnd      OnError = "end"
	OnErrorRetry    OnError = "retry"
)

// OverflowPolicy is what a call does when max_inflight calls are in flight.
type OverflowPolicy string

const (
	OverflowQueue  OverflowPolicy = "queue"
	OverflowReject OverflowPolicy = "reject"
	OverflowShed   OverflowPolicy = "shed"
)

// Jitter randomizes retry backoff so retries from many requests spread out.
type Jitter string

const (
	JitterFull  Jitter = "full"
	JitterEqual Jitter = "equal"
	JitterNone  Jitter = "none"
)

// Policy resolves the caller policy of a configured plugin's phase: per_phase
// over the plugin's own settings over its messaging config over the
// defaults. The config must be valid.
func (c *Config) Policy(plugin string, ph protocol.Phase) (Policy, error) {
	for i := range c.Plugins {
		p := &c.Plugins[i]
		if p.Name != plugin {
			continue
		}
		var m *MessagingConfig
		for j := range c.Messaging {
			if c.Messaging[j].Name == p.Messaging {
				m = &c.Messaging[j]
			}
		}
		var phase *PhasePolicy
		if pp, ok := p.PerPhase[ph.String()]; ok {
			phase = &pp
		}
		return resolvePolicy(m, &p.PhasePolicy, phase, ph), nil
	}
	return Policy{}, &ConfigError{Path: "plugins", Msg: "no plugin " + plugin}
}
