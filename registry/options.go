package registry

import (
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/protocol"
)

// Defaults of New.
const (
	DefaultRetain   = 10
	DefaultReplicas = 1
	MaxRetain       = 1000
)

// Option configures New. Options reject bad values; New reports the first.
type Option func(*options) error

type options struct {
	env      string
	replicas int
	retain   int
	storage  jetstream.StorageType
	logger   *slog.Logger
}

func defaultOptions() options {
	return options{
		env:      protocol.DefaultEnv,
		replicas: DefaultReplicas,
		retain:   DefaultRetain,
		storage:  jetstream.FileStorage,
		logger:   slog.Default(),
	}
}

// WithEnv sets the environment the buckets belong to: they are named
// nylon_{env}_functions and nylon_{env}_modules. Default "dev". The env is
// one name token: 1 to 64 of A-Z, a-z, 0-9, '_' and '-'.
func WithEnv(env string) Option {
	return func(o *options) error {
		if err := validateEnv(env); err != nil {
			return err
		}
		o.env = env
		return nil
	}
}

// WithReplicas sets the JetStream replicas of buckets New creates: 1 (the
// default) for a single server, 3 on a cluster. An existing bucket keeps its
// configuration.
func WithReplicas(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("replicas: %d out of range 1..5", n)
		}
		o.replicas = n
		return nil
	}
}

// WithRetain sets how many versions of each function are kept (default 10):
// after a deploy, versions older than the newest n are deleted, except the
// active one. Rollback can reach only retained versions.
func WithRetain(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxRetain {
			return fmt.Errorf("retain: %d out of range 1..%d", n, MaxRetain)
		}
		o.retain = n
		return nil
	}
}

// WithStorage sets the storage of buckets New creates: jetstream.FileStorage
// (the default) or jetstream.MemoryStorage.
func WithStorage(st jetstream.StorageType) Option {
	return func(o *options) error {
		if st != jetstream.FileStorage && st != jetstream.MemoryStorage {
			return fmt.Errorf("storage: unknown type %d", int(st))
		}
		o.storage = st
		return nil
	}
}

// WithLogger sets where housekeeping (retention, garbage collection, bad
// records seen by a watcher) is logged. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("logger: nil")
		}
		o.logger = l
		return nil
	}
}

func validateEnv(env string) error {
	if env == "" || len(env) > 64 {
		return fmt.Errorf("env %q: want 1 to 64 characters", truncate(env, 20))
	}
	for i := 0; i < len(env); i++ {
		c := env[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return fmt.Errorf("env %q: character %q at %d (want A-Z, a-z, 0-9, '_', '-')", env, c, i)
		}
	}
	return nil
}

// FunctionsBucket is the KV bucket holding env's deployment records.
func FunctionsBucket(env string) string { return "nylon_" + env + "_functions" }

// ModulesBucket is the Object Store bucket holding env's module bytes.
func ModulesBucket(env string) string { return "nylon_" + env + "_modules" }

// FunctionsStream and ModulesStream are the JetStream streams under env's
// buckets: the names `nats stream` commands take.
func FunctionsStream(env string) string { return "KV_" + FunctionsBucket(env) }
func ModulesStream(env string) string   { return "OBJ_" + ModulesBucket(env) }
