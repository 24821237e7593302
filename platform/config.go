package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Defaults a Config falls back to for zero fields. Function limits left at
// zero in a deployment record take the node's defaults, so operators can
// change them without redeploying.
const (
	DefaultTimeout         = time.Second
	DefaultQueueLength     = 1024
	DefaultDedupWindow     = 2 * time.Minute
	DefaultDedupMaxEntries = 65536
	DefaultDedupMaxBytes   = 32 << 20
	DefaultLoadTimeout     = 2 * time.Minute
)

// DefaultMaxWorkers is the concurrency of a function whose record sets no
// max_workers: twice the usable CPUs, at least 4. Guest calls are CPU-bound
// except when a handler sleeps, so more workers than this mostly add memory
// (one wasm instance each).
func DefaultMaxWorkers() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// DefaultMaxConcurrentLoads is how many versions a node loads at once when
// Config.MaxConcurrentLoads is zero: one per usable CPU, as compiling and
// starting a module is CPU-bound.
func DefaultMaxConcurrentLoads() int { return runtime.GOMAXPROCS(0) }

// Config configures a Node. It is a plain struct checked once by Validate
// (NewNode calls it); the zero value of every optional field means its
// default.
//
//	node, err := platform.NewNode(platform.Config{
//		NATS:     nc,
//		Registry: reg,
//		Env:      "prod",
//		Metrics:  promReg,
//	})
type Config struct {
	// NATS is the connection the node subscribes and replies on. Required.
	// The caller owns it: Drain flushes replies but does not close it.
	NATS *nats.Conn

	// Registry is watched for the functions to serve. Required.
	Registry *registry.Registry

	// Host compiles and runs modules. When nil, Start creates one (with
	// CompilationCacheDir and Logger) and Drain closes it; a Host passed in
	// is the caller's to close, after Drain.
	Host *wasmhost.Host

	// CompilationCacheDir is where a Host created by the node keeps compiled
	// modules across restarts; empty disables the on-disk cache. The
	// directory is bounded to wasmhost.DefaultCompilationCacheMaxBytes; for
	// another bound pass a Host built with WithCompilationCacheMaxBytes.
	CompilationCacheDir string

	// Env names the environment (default "dev"); it appears in service
	// metadata and /healthz.
	Env string

	// SubjectPrefix is the prefix of every subject, default "nylon.{env}".
	SubjectPrefix string

	// NodeID identifies this node in micro metadata, /healthz and
	// /v1/nodes. Default: the host name plus a random suffix.
	NodeID string

	// Logger receives the node's records; default slog.Default().
	Logger *slog.Logger

	// Metrics is the registry the node's Prometheus collectors are
	// registered on. Nil keeps them on a private registry (nothing global is
	// ever touched).
	Metrics *prometheus.Registry

	// Defaults for limits a record leaves at zero. DefaultTimeout and
	// DefaultMaxWorkers apply when these are zero too; MemoryMB and
	// MaxBodyBytes zero leave wasmhost's own defaults.
	Timeout      time.Duration
	MaxWorkers   int
	MemoryMB     int
	MaxBodyBytes int64

	// QueueLength is how many requests per function may wait for a worker
	// once max_workers are busy (default DefaultQueueLength). Beyond it a
	// request is refused at once with a 503 "overloaded" micro error.
	QueueLength int

	// PayloadLimits caps the size of a request message per phase (413
	// beyond it). The zero value allows protocol.DefaultMaxPayload.
	PayloadLimits protocol.PayloadLimits

	// DedupWindow is how long a reply is remembered by request id so that a
	// redelivered request is answered without running the handler again
	// (default DefaultDedupWindow; negative disables deduplication).
	// DedupMaxEntries and DedupMaxBytes bound the memory per function;
	// oldest replies are forgotten first, so under a high request rate the
	// effective window is DedupMaxEntries / rate.
	DedupWindow     time.Duration
	DedupMaxEntries int
	DedupMaxBytes   int64

	// LoadTimeout bounds fetching and compiling one version (default
	// DefaultLoadTimeout).
	LoadTimeout time.Duration

	// MaxConcurrentLoads is how many versions the node fetches, compiles
	// and starts at once (default DefaultMaxConcurrentLoads); the others
	// wait their turn, outside LoadTimeout. A node starting with many
	// functions would otherwise read every module from the Object Store at
	// once over its one NATS connection, faster than a CPU busy compiling
	// can take them, and the server would drop the connection as a slow
	// consumer.
	MaxConcurrentLoads int
}

// ErrInvalidConfig is wrapped by every Config.Validate failure; the message
// names the field.
var ErrInvalidConfig = errors.New("invalid config")

// Validate checks c and reports every problem at once, each wrapping
// ErrInvalidConfig and naming its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.NATS == nil {
		bad("NATS", "required")
	}
	if c.Registry == nil {
		bad("Registry", "required")
	}
	if c.Env != "" && !validToken(c.Env) {
		bad("Env", "%q: want 1-64 characters of A-Z, a-z, 0-9, '-', '_'", c.Env)
	}
	if c.SubjectPrefix != "" {
		if err := protocol.ValidatePrefix(c.SubjectPrefix); err != nil {
			bad("SubjectPrefix", "%v", err)
		}
	}
	if c.NodeID != "" && !validToken(c.NodeID) {
		bad("NodeID", "%q: want 1-64 characters of A-Z, a-z, 0-9, '-', '_'", c.NodeID)
	}
	nonNeg := func(field string, v int64) {
		if v < 0 {
			bad(field, "%d is negative", v)
		}
	}
	nonNeg("Timeout", int64(c.Timeout))
	nonNeg("MaxWorkers", int64(c.MaxWorkers))
	nonNeg("MemoryMB", int64(c.MemoryMB))
	nonNeg("MaxBodyBytes", c.MaxBodyBytes)
	nonNeg("QueueLength", int64(c.QueueLength))
	nonNeg("DedupMaxEntries", int64(c.DedupMaxEntries))
	nonNeg("DedupMaxBytes", c.DedupMaxBytes)
	nonNeg("LoadTimeout", int64(c.LoadTimeout))
	nonNeg("MaxConcurrentLoads", int64(c.MaxConcurrentLoads))
	nonNeg("PayloadLimits.Default", int64(c.PayloadLimits.Default))
	if c.MaxWorkers > registry.MaxWorkers {
		bad("MaxWorkers", "%d, at most %d", c.MaxWorkers, registry.MaxWorkers)
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Env == "" {
		c.Env = protocol.DefaultEnv
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = protocol.Prefix(c.Env)
	}
	if c.NodeID == "" {
		c.NodeID = defaultNodeID()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxWorkers == 0 {
		c.MaxWorkers = DefaultMaxWorkers()
	}
	if c.QueueLength == 0 {
		c.QueueLength = DefaultQueueLength
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupMaxEntries == 0 {
		c.DedupMaxEntries = DefaultDedupMaxEntries
	}
	if c.DedupMaxBytes == 0 {
		c.DedupMaxBytes = DefaultDedupMaxBytes
	}
	if c.LoadTimeout == 0 {
		c.LoadTimeout = DefaultLoadTimeout
	}
	if c.MaxConcurrentLoads == 0 {
		c.MaxConcurrentLoads = DefaultMaxConcurrentLoads()
	}
	return c
}

// validToken reports whether s is 1-64 characters of [A-Za-z0-9_-]: safe as
// a metadata value, a log attribute and a NATS subject token.
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
