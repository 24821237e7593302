package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Defaults of AdminConfig.
const (
	DefaultAdminAddr        = "127.0.0.1:8081"
	DefaultMaxModuleBytes   = 32 << 20
	DefaultDiscoveryTimeout = time.Second
	DefaultBodyTimeout      = 2 * time.Minute
)

// maxConcurrentValidations is how many uploads are compiled at once.
const maxConcurrentValidations = 2

// MaxUploadsInMemory is how many deploy bodies the admin API reads and
// holds at once (each up to MaxModuleBytes, 32 MiB by default: 256 MiB in
// all); further deploys wait for one to finish before their body is read.
// Without it, a burst of uploads behind two slow validations would all be
// buffered at once.
const MaxUploadsInMemory = 8

// AdminConfig configures the admin API. Plain struct, checked by NewAdmin.
type AdminConfig struct {
	// Addr is where Start listens (default DefaultAdminAddr). Ignored when
	// the handler is served some other way (Handler).
	Addr string

	// Env is the environment (default "dev"). Outside "dev" a Token is
	// required.
	Env string

	// Token is the bearer token every /v1 request must carry; empty
	// disables authentication, which only "dev" allows. /healthz and
	// /metrics stay open.
	Token string

	// Registry is where deployments are stored. Required.
	Registry *registry.Registry

	// Host validates uploaded modules. When nil, NewAdmin creates one
	// (closed by Drain); pass the node's to share its compilation cache.
	Host *wasmhost.Host

	// NATS is used to discover nodes for /v1/nodes and to refuse a deploy
	// whose max_body_bytes its server's max_payload cannot carry; when nil,
	// /v1/nodes answers 503, /healthz reports no connection and
	// max_body_bytes is only checked against registry.MaxBodyBytesCap.
	NATS *nats.Conn

	// Metrics is served on /metrics; nil serves an empty registry.
	Metrics *prometheus.Registry

	// Health answers /healthz; usually the *Node. When nil (an admin-only
	// process), /healthz reports the NATS connection alone.
	Health HealthReporter

	// Logger receives the access log and errors; default slog.Default().
	Logger *slog.Logger

	// MaxModuleBytes caps an upload (default DefaultMaxModuleBytes); a
	// larger body is refused with 413 without being read to the end.
	MaxModuleBytes int64

	// DiscoveryTimeout is how long /v1/nodes collects answers from the
	// services (default DefaultDiscoveryTimeout).
	DiscoveryTimeout time.Duration

	// BodyTimeout bounds how long the body of a deploy or rollback may
	// take to arrive, counted from when the API starts reading it (a
	// deploy waiting for an upload slot is not counted); default
	// DefaultBodyTimeout, enough for a 32 MiB module at 300 KB/s. A
	// slower body is answered 408 and its connection closed, so a client
	// trickling its upload cannot hold one of the MaxUploadsInMemory
	// slots, or a connection, for longer.
	BodyTimeout time.Duration

	// ReservedPaths describes the HTTP listener in front of the gateway
	// when it answers some paths itself instead of handing them to the
	// gateway, as nylon serve answers its chat page under /chat/ but hands
	// /chat/ws to the gateway. Keys are literal http.ServeMux path patterns
	// ("/chat/" is the subtree, "/chat/ws" the one path); true marks a
	// pattern the listener serves itself, false one it hands to the gateway
	// (an exception inside a reserved subtree). Every other path goes to
	// the gateway. A deploy or rollback with a route none of whose paths the
	// gateway would see is refused with 409 route-conflict. Nil reserves
	// nothing. For nylon serve:
	//
	//	ReservedPaths: map[string]bool{"/chat/": true, "/chat/ws": false}
	ReservedPaths map[string]bool

	// Profiling serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ and expvar under /debug/vars, behind the same bearer
	// token as /v1: they show the process's command line, and a profile
	// costs CPU while it is taken, so they are off unless asked for.
	Profiling bool
}

// Admin is the admin API: deploy, list, inspect, roll back and delete
// functions, list nodes, health and metrics. Serve it with Start/Drain, or
// mount Handler yourself.
type Admin struct {
	cfg      AdminConfig
	log      *slog.Logger
	reg      *registry.Registry
	reserved reservedPaths
	host     *wasmhost.Host
	ownHost  bool
	handler  http.Handler
	// validating bounds concurrent module validations: each compiles a
	// module (CPU and memory heavy), so a burst of uploads queues here.
	validating chan struct{}
	// uploads bounds the deploy bodies held in memory (MaxUploadsInMemory).
	uploads chan struct{}
	// routesMu makes a deploy's or rollback's route check and its write to
	// the registry one step for this admin API.
	routesMu sync.Mutex

	mu     sync.Mutex
	srv    *http.Server
	ln     net.Listener
	served chan struct{}

	drainOnce sync.Once
	drainErr  error
	done      chan struct{}
}

// NewAdmin checks cfg and builds the admin API. Outside "dev" it refuses an
// empty token. ctx bounds creating the validation host when cfg.Host is nil.
func NewAdmin(ctx context.Context, cfg AdminConfig) (*Admin, error) {
	if cfg.Env == "" {
		cfg.Env = protocol.DefaultEnv
	}
	var errs []error
	if cfg.Registry == nil {
		errs = append(errs, fmt.Errorf("%w: Registry: required", ErrInvalidConfig))
	}
	if !validToken(cfg.Env) {
		errs = append(errs, fmt.Errorf("%w: Env: %q: want 1-64 characters of A-Z, a-z, 0-9, '-', '_'", ErrInvalidConfig, cfg.Env))
	}
	if cfg.Token == "" && cfg.Env != protocol.DefaultEnv {
		errs = append(errs, fmt.Errorf("%w: Token: required in env %q (only %q runs the admin API without one)",
			ErrInvalidConfig, cfg.Env, protocol.DefaultEnv))
	}
	if cfg.MaxModuleBytes < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxModuleBytes: %d is negative", ErrInvalidConfig, cfg.MaxModuleBytes))
	}
	if cfg.DiscoveryTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: DiscoveryTimeout: %v is negative", ErrInvalidConfig, cfg.DiscoveryTimeout))
	}
	if cfg.BodyTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: BodyTimeout: %v is negative", ErrInvalidConfig, cfg.BodyTimeout))
	}
	reserved, err := newReservedPaths(cfg.ReservedPaths)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("platform: new admin: %w", err)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAdminAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxModuleBytes == 0 {
		cfg.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if cfg.DiscoveryTimeout == 0 {
		cfg.DiscoveryTimeout = DefaultDiscoveryTimeout
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	a := &Admin{
		cfg:        cfg,
		log:        cfg.Logger,
		reg:        cfg.Registry,
		reserved:   reserved,
		host:       cfg.Host,
		validating: make(chan struct{}, maxConcurrentValidations),
		uploads:    make(chan struct{}, MaxUploadsInMemory),
		done:       make(chan struct{}),
	}
	if a.host == nil {
		h, err := wasmhost.New(ctx, wasmhost.Config{}.WithLogger(cfg.Logger))
		if err != nil {
			return nil, fmt.Errorf("platform: new admin: %w", err)
		}
		a.host, a.ownHost = h, true
	}
	a.handler = a.routes()
	return a, nil
}

// Handler returns the API as an http.Handler.
func (a *Admin) Handler() http.Handler { return a.handler }

func (a *Admin) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(withRequestID, accessLog(a.log), recoverer(a.log))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problem(ProblemNotFound, http.StatusNotFound, "no such resource: "+r.URL.Path))
	})
	root := r
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		// RFC 9110 section 15.5.6: a 405 lists the methods the resource
		// has. chi hands a custom handler no list, so ask the router.
		allowed := allowedMethods(root, r)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, r, problem(ProblemMethodNotAllowed, http.StatusMethodNotAllowed,
			fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allowed, ", "))))
	})

	r.Get("/healthz", a.healthz)
	metrics := a.cfg.Metrics
	if metrics == nil {
		metrics = prometheus.NewRegistry()
	}
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(a.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))

	r.Route("/v1", func(r chi.Router) {
		r.Use(bearerAuth(a.cfg.Token))
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, r, problem(ProblemNotFound, http.StatusNotFound, "no such resource: "+r.URL.Path))
		})
		r.Get("/functions", a.listFunctions)
		r.Put("/functions/{name}", a.deploy)
		r.Get("/functions/{name}", a.getFunction)
		r.Delete("/functions/{name}", a.deleteFunction)
		r.Get("/functions/{name}/versions", a.versions)
		r.Post("/functions/{name}/rollback", a.rollback)
		r.Get("/nodes", a.nodes)
	})
	if a.cfg.Profiling {
		// /debug/pprof/ and /debug/vars (expvar), chi's mounting of them.
		r.With(bearerAuth(a.cfg.Token)).Mount("/debug", chimw.Profiler())
	}
	return r
}

// allowedMethods returns the methods router serves r's path with.
func allowedMethods(router chi.Routes, r *http.Request) []string {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch} {
		if router.Match(chi.NewRouteContext(), m, path) {
			out = append(out, m)
		}
	}
	return out
}

// healthz answers the node's health (see Health for the statuses and codes).
func (a *Admin) healthz(w http.ResponseWriter, r *http.Request) {
	var h Health
	if a.cfg.Health != nil {
		h = a.cfg.Health.Health()
	} else {
		h = Health{Env: a.cfg.Env, NATS: natsHealth(a.cfg.NATS), Functions: []FunctionHealth{}, Status: HealthOK}
		if !h.NATS.Connected {
			h.Status = HealthUnavailable
		}
	}
	strict := r.URL.Query().Has("strict") && r.URL.Query().Get("strict") != "0" && r.URL.Query().Get("strict") != "false"
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, healthStatus(h, strict), h)
}

// Start listens on Addr and serves until Drain. It returns once the
// listener is open (Addr reports the bound address, useful with port 0).
func (a *Admin) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return fmt.Errorf("platform: admin: %w", ErrStarted)
	}
	select {
	case <-a.done:
		return fmt.Errorf("platform: admin: %w", ErrDrained)
	default:
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("platform: admin: listen %s: %w", a.cfg.Addr, err)
	}
	a.ln = ln
	a.srv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.served = make(chan struct{})
	go func(srv *http.Server, served chan struct{}) {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("platform: admin: serve", "addr", ln.Addr().String(), "err", err)
		}
	}(a.srv, a.served)
	a.log.Info("platform: admin API listening", "addr", ln.Addr().String(), "env", a.cfg.Env, "auth", a.cfg.Token != "")
	return nil
}

// Addr returns the address Start listens on, or "" before Start.
func (a *Admin) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Drain stops accepting connections and waits, bounded by ctx, for the
// requests being served; then it closes a validation host it created.
// Idempotent: later calls wait for the first and return its result.
func (a *Admin) Drain(ctx context.Context) error {
	a.drainOnce.Do(func() {
		a.mu.Lock()
		srv, served := a.srv, a.served
		a.mu.Unlock()
		var errs []error
		if srv != nil {
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shutdown: %w", err))
				_ = srv.Close()
			}
			<-served
		}
		if a.ownHost {
			hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := a.host.Close(hctx); err != nil {
				errs = append(errs, fmt.Errorf("close host: %w", err))
			}
			cancel()
		}
		if err := errors.Join(errs...); err != nil {
			a.drainErr = fmt.Errorf("platform: admin: drain: %w", err)
		}
		close(a.done)
	})
	<-a.done
	return a.drainErr
}

// Done is closed when Drain has finished.
func (a *Admin) Done() <-chan struct{} { return a.done }
