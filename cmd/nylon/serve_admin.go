package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nylon-functions/nylon/internal/natsconn"
	"github.com/nylon-functions/nylon/platform"
)

// buildAdmin builds the --admin listener, which every serve process runs,
// so a node or gateway scaled out in processes of its own can be probed and
// scraped: /healthz and /metrics for the components of this process, and
// the admin API (/v1, /debug/pprof/ with --pprof, behind --admin-token) when
// the roles include admin. Without that role every other path, /v1
// included, answers 404 problem+json.
func (s *serveShared) buildAdmin(ctx context.Context, d serveDeps) (component, error) {
	roles := s.cfg.roles()
	var api *platform.Admin
	if slices.Contains(roles, roleAdmin) {
		reg, err := s.registry(ctx, d)
		if err != nil {
			return nil, err
		}
		host, err := s.wasmHost(ctx, d)
		if err != nil {
			return nil, err
		}
		// Addr and Health are unused: this listener serves the API's
		// handler, and /healthz is answered below for the whole process.
		api, err = platform.NewAdmin(ctx, platform.AdminConfig{
			Env: s.cfg.Env, Token: s.cfg.AdminToken,
			Registry: reg, Host: host, NATS: d.NATS.NC, Metrics: s.Metrics, Logger: d.Log,
			Profiling: s.cfg.Profiling, ReservedPaths: listenerPaths(),
		})
		if err != nil {
			return nil, err
		}
	}

	// What /healthz says of JetStream, for alerts; once per process, as
	// this listener is.
	if err := s.Metrics.Register(newStoreCollector(d.NATS)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// The NATS connections (and the embedded server), read at scrape time.
	natsMetrics := newNATSCollector(d.NATS.Server, func() []natsSource { return s.natsSources(d.NATS) })
	if err := s.Metrics.Register(natsMetrics); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", getOnly(s.healthHandler(d.NATS, d.ShuttingDown)))
	mux.Handle("/metrics", getOnly(promhttp.HandlerFor(s.Metrics, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(d.Log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})))
	if api != nil {
		mux.Handle("/", api.Handler())
	} else {
		detail := fmt.Sprintf("this process serves /healthz and /metrics only: the admin API needs role admin (roles here: %s)", strings.Join(roles, ","))
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, r, http.StatusNotFound, platform.ProblemNotFound, detail)
		})
	}
	return &adminServer{addr: s.cfg.Admin, handler: mux, api: api, tls: s.tls.Admin, log: d.Log, out: d.Stdout, done: make(chan struct{})}, nil
}

// adminServer serves the --admin listener; see buildAdmin.
type adminServer struct {
	addr    string
	handler http.Handler
	api     *platform.Admin // nil without role admin
	tls     *tls.Config     // nil: plain HTTP
	log     *slog.Logger
	out     io.Writer

	srv  *http.Server
	done chan struct{}

	mu  sync.Mutex
	err error
}

func (a *adminServer) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.addr, err)
	}
	a.srv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          serverErrorLog(a.log),
		TLSConfig:         a.tls,
	}
	go func() {
		defer close(a.done)
		if err := serveHTTP(a.srv, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.mu.Lock()
			a.err = err
			a.mu.Unlock()
		}
	}()
	what := "admin API /v1, /healthz, /metrics"
	if a.api == nil {
		what = "/healthz, /metrics; no admin API without role admin"
	}
	a.log.Info("admin listening", "addr", ln.Addr().String(), "admin_api", a.api != nil, "tls", a.tls != nil)
	fmt.Fprintf(a.out, "admin: %s://%s (%s)\n", scheme(a.tls), ln.Addr(), what)
	return nil
}

// Done is closed when the listener stops serving, by Drain or by itself.
func (a *adminServer) Done() <-chan struct{} { return a.done }

func (a *adminServer) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Drain stops accepting connections and waits, within ctx, for the requests
// being served (an upload in validation among them).
func (a *adminServer) Drain(ctx context.Context) error {
	var errs []error
	if err := a.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
		_ = a.srv.Close()
	}
	if a.api != nil {
		if err := a.api.Drain(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// processHealth is serve's /healthz document. Its top-level fields are the
// admin API's platform.Health: the node's when this process runs one,
// otherwise the NATS connection's. Roles and Gateway tell what else the
// process runs; JetStream whether JetStream stores this process's writes.
type processHealth struct {
	platform.Health
	Roles     []string              `json:"roles"`
	Gateway   *gatewayHealth        `json:"gateway,omitempty"`
	JetStream *natsconn.StoreHealth `json:"jetstream,omitempty"`
}

// gatewayHealth is the gateway component: its HTTP listener, the WebSocket
// edge it serves, and the messaging configs that dial servers of their own.
type gatewayHealth struct {
	State     string            `json:"state"` // starting, serving, draining, stopped
	Addr      string            `json:"addr,omitempty"`
	WebSocket wsHealth          `json:"websocket"`
	Messaging []messagingHealth `json:"messaging,omitempty"`
}

type wsHealth struct {
	Connections int `json:"connections"`
	Rooms       int `json:"rooms"`
	Members     int `json:"members"`
}

type messagingHealth struct {
	Name string `json:"name"`
	platform.NATSHealth
}

// health reports this process. Status is the node's (or the NATS
// connection's) status, made unavailable when the gateway does not serve,
// and degraded when a messaging config's own connection is down: its
// plugins fail, but every gateway shares the config, so taking this one out
// of rotation would not help (?strict=1 answers 503 for that too).
//
// It is degraded too when JetStream does not store what this process
// writes (natsconn.StoreHealth): a stream stopped by a write error fails
// every deploy, rollback and delete, and dead letters, until its server
// restarts, while functions go on being served, so taking the process out
// of rotation would stop traffic that works.
//
// Once shuttingDown is closed the process is going away: unavailable, state
// draining, whatever its components say, though they serve on during
// --shutdown-delay, so balancers take it out of rotation before its
// listeners close.
func (s *serveShared) health(ctx context.Context, conn *natsconn.Conn, shuttingDown <-chan struct{}) processHealth {
	s.mu.Lock()
	node, gw := s.node, s.gw
	s.mu.Unlock()
	nc := conn.NC
	h := processHealth{Roles: s.cfg.roles()}
	if node != nil {
		h.Health = node.Health()
	} else {
		h.Health = platform.Health{Status: platform.HealthOK, Env: s.cfg.Env, NATS: connHealth(nc), Functions: []platform.FunctionHealth{}}
		if !h.NATS.Connected {
			h.Status = platform.HealthUnavailable
		}
	}
	if gw != nil {
		g := gw.health()
		h.Gateway = &g
		if g.State != stateServing {
			h.Status = platform.HealthUnavailable
		}
		for _, m := range g.Messaging {
			if !m.Connected && h.Status == platform.HealthOK {
				h.Status = platform.HealthDegraded
			}
		}
	}
	st := conn.StoreHealth(ctx)
	h.JetStream = &st
	if st.Status != natsconn.StoreOK && h.Status == platform.HealthOK {
		h.Status = platform.HealthDegraded
	}
	select {
	case <-shuttingDown:
		h.Status, h.State = platform.HealthUnavailable, stateDraining
	default:
	}
	return h
}

func (g *gatewayComponent) health() gatewayHealth {
	g.mu.Lock()
	h := gatewayHealth{State: g.state, Addr: g.addr}
	g.mu.Unlock()
	st := g.edge.Stats()
	h.WebSocket = wsHealth{Connections: st.Connections, Rooms: st.Rooms, Members: st.Members}
	for _, c := range g.conns {
		h.Messaging = append(h.Messaging, messagingHealth{Name: c.name, NATSHealth: connHealth(c.nc)})
	}
	return h
}

func connHealth(nc *nats.Conn) platform.NATSHealth {
	h := platform.NATSHealth{Connected: nc.IsConnected(), Status: nc.Status().String()}
	if h.Connected {
		h.Server = nc.ConnectedUrlRedacted()
	}
	return h
}

// healthHandler answers /healthz as the admin API does: 200 for ok and
// degraded, 503 for unavailable, and with ?strict=1 503 for degraded too.
func (s *serveShared) healthHandler(conn *natsconn.Conn, shuttingDown <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := s.health(r.Context(), conn, shuttingDown)
		q := r.URL.Query()
		strict := q.Has("strict") && q.Get("strict") != "0" && q.Get("strict") != "false"
		code := http.StatusOK
		if h.Status == platform.HealthUnavailable || strict && h.Status == platform.HealthDegraded {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(h) // the client went away if this fails
	})
}

// getOnly answers methods other than GET and HEAD with 405 problem+json.
func getOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, r, http.StatusMethodNotAllowed, platform.ProblemMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeProblem answers r with an RFC 9457 problem, shaped as the admin
// API's.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(platform.Problem{
		Type: typ, Title: http.StatusText(status), Status: status, Detail: detail, Instance: r.URL.Path,
	}) // the client went away if this fails
}
