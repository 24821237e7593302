package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
	"github.com/nylon-functions/nylon/ws"
)

// serveShared holds what several components of one serve process use: the
// Prometheus registry /metrics serves, the function registry, the wasm host
// (one runtime and compilation cache for the node and upload validation),
// and the node (the admin API's /healthz reports it). Built lazily in table
// order; closed by serve after every component drained.
type serveShared struct {
	cfg     *serveConfig
	Metrics *prometheus.Registry

	mu   sync.Mutex
	reg  *registry.Registry
	host *wasmhost.Host
	node *platform.Node
}

func newServeShared(cfg *serveConfig) *serveShared {
	m := prometheus.NewRegistry()
	m.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &serveShared{cfg: cfg, Metrics: m}
}

func (s *serveShared) registry(ctx context.Context, d serveDeps) (*registry.Registry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reg != nil {
		return s.reg, nil
	}
	var reg *registry.Registry
	err := untilJetStream(ctx, d.Log, "registry", func() (err error) {
		reg, err = registry.New(ctx, d.NATS.JetStream(), registry.WithEnv(s.cfg.Env), registry.WithReplicas(s.cfg.Replicas), registry.WithLogger(d.Log))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	warnSingleCopy(ctx, d, registry.FunctionsStream(s.cfg.Env))
	warnSingleCopy(ctx, d, registry.ModulesStream(s.cfg.Env))
	s.reg = reg
	return reg, nil
}

// warnSingleCopy logs a warning when stream, on a NATS cluster, has one
// replica: whoever created it did so without --replicas, and losing the
// server that holds it loses what it holds. The stream keeps its replicas
// whatever this process's --replicas says, so only an operator can fix it.
func warnSingleCopy(ctx context.Context, d serveDeps, stream string) {
	cluster := d.NATS.NC.ConnectedClusterName()
	if cluster == "" {
		return
	}
	st, err := d.NATS.JetStream().Stream(ctx, stream)
	if err != nil || st.CachedInfo().Config.Replicas > 1 {
		return
	}
	d.Log.Warn("stream has a single copy on a NATS cluster; losing its server loses it. Scale it: nats stream edit "+stream+" --replicas 3",
		"stream", stream, "cluster", cluster)
}

func (s *serveShared) wasmHost(ctx context.Context, d serveDeps) (*wasmhost.Host, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.host != nil {
		return s.host, nil
	}
	cfg := wasmhost.Config{}.
		WithCompilationCacheDir(filepath.Join(s.cfg.Data, "wazero-cache")).
		WithLogger(d.Log)
	h, err := wasmhost.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("wasm host: %w", err)
	}
	s.host = h
	return h, nil
}

// Close releases the wasm host; the registry holds nothing to close.
func (s *serveShared) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.host == nil {
		return nil
	}
	return s.host.Close(ctx)
}

// serveComponents is the table of components, in start order: the node
// first, so functions are served before the edges send traffic.
func serveComponents(s *serveShared) []componentSpec {
	return []componentSpec{
		{name: "node", role: roleNode, build: s.buildNode},
		{name: "gateway", role: roleGateway, build: s.buildGateway},
		{name: "admin", role: roleAdmin, build: s.buildAdmin},
	}
}

func (s *serveShared) buildNode(ctx context.Context, d serveDeps) (component, error) {
	reg, err := s.registry(ctx, d)
	if err != nil {
		return nil, err
	}
	host, err := s.wasmHost(ctx, d)
	if err != nil {
		return nil, err
	}
	n, err := platform.NewNode(platform.Config{
		NATS: d.NATS.NC, Registry: reg, Host: host, Env: s.cfg.Env, NodeID: s.cfg.NodeID,
		Logger: d.Log, Metrics: s.Metrics,
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.node = n
	s.mu.Unlock()
	fmt.Fprintf(d.Stdout, "node: %s serving functions on nylon.%s.>\n", n.ID(), s.cfg.Env)
	return n, nil
}

func (s *serveShared) buildAdmin(ctx context.Context, d serveDeps) (component, error) {
	reg, err := s.registry(ctx, d)
	if err != nil {
		return nil, err
	}
	host, err := s.wasmHost(ctx, d)
	if err != nil {
		return nil, err
	}
	cfg := platform.AdminConfig{
		Addr: s.cfg.Admin, Env: s.cfg.Env, Token: s.cfg.AdminToken,
		Registry: reg, Host: host, NATS: d.NATS.NC, Metrics: s.Metrics, Logger: d.Log,
		Profiling: s.cfg.Profiling,
	}
	s.mu.Lock()
	if s.node != nil {
		cfg.Health = s.node
	}
	s.mu.Unlock()
	a, err := platform.NewAdmin(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &adminComponent{Admin: a, out: d.Stdout}, nil
}

// adminComponent prints the admin API's address once it listens.
type adminComponent struct {
	*platform.Admin
	out interface{ Write([]byte) (int, error) }
}

func (a *adminComponent) Start(ctx context.Context) error {
	if err := a.Admin.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "admin: http://%s (admin API /v1, /healthz, /metrics)\n", a.Addr())
	return nil
}

func (s *serveShared) buildGateway(ctx context.Context, d serveDeps) (component, error) {
	var gcfg gateway.Config
	if s.cfg.GatewayConfig != "" {
		c, err := gateway.LoadConfig(s.cfg.GatewayConfig)
		if err != nil {
			return nil, err
		}
		gcfg = *c
	}
	if err := gcfg.ApplyEnv(d.LookupEnv); err != nil {
		return nil, err
	}
	if err := gcfg.CheckSecurity(s.cfg.Env); err != nil {
		return nil, err
	}
	// A messaging config that names servers gets a connection of its own
	// (NYLON_NATS_URLS, applied above, overrides them all); the others use
	// serve's connection: --nats, or the embedded server.
	var own []*nats.Conn
	closeOwn := func() {
		for _, nc := range own {
			nc.Close()
		}
	}
	opts := []gateway.Option{gateway.WithLogger(d.Log), gateway.WithRegisterer(s.Metrics), gateway.WithEnv(s.cfg.Env), gateway.WithReplicas(s.cfg.Replicas)}
	for i := range gcfg.Messaging {
		mc := &gcfg.Messaging[i]
		if len(mc.Servers) == 0 {
			continue
		}
		nc, err := mc.Connect()
		if err != nil {
			closeOwn()
			return nil, fmt.Errorf("gateway: messaging[%s]: %w", mc.Name, err)
		}
		own = append(own, nc)
		opts = append(opts, gateway.WithMessagingConn(mc.Name, nc))
	}
	edge, err := ws.New(ws.Config{Env: s.cfg.Env}, d.NATS.NC, ws.WithLogger(d.Log), ws.WithRegistry(s.Metrics))
	if err != nil {
		closeOwn()
		return nil, fmt.Errorf("websocket edge: %w", err)
	}
	wsHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, ok := gateway.RouteOf(r.Context())
		if !ok || info.Function == "" {
			http.Error(w, "websocket route without a function", http.StatusNotFound)
			return
		}
		edge.ServeFunction(w, r.WithContext(ws.WithParams(r.Context(), info.Params)), info.Function, info.Config)
	})
	gw, err := gateway.New(gcfg, d.NATS.NC, append(opts, gateway.WithWebSocket(wsHandler))...)
	if err != nil {
		_ = edge.Close(context.Background())
		closeOwn()
		return nil, err
	}
	return &gatewayComponent{shared: s, deps: d, gw: gw, edge: edge, conns: own, done: make(chan struct{})}, nil
}

// gatewayComponent serves the HTTP gateway and WebSocket edge on --http,
// the chat page on /chat/, and keeps the gateway's function routes in step
// with the registry.
type gatewayComponent struct {
	shared *serveShared
	deps   serveDeps
	gw     *gateway.Gateway
	edge   *ws.Edge
	conns  []*nats.Conn // the messaging configs' own connections

	srv     *http.Server
	watcher *registry.Watcher
	done    chan struct{}
	errMu   sync.Mutex
	err     error
}

func (g *gatewayComponent) Start(ctx context.Context) error {
	if err := untilJetStream(ctx, g.deps.Log, "gateway", func() error { return g.gw.Start(ctx) }); err != nil {
		return err
	}
	warnSingleCopy(ctx, g.deps, gateway.DLQStreamName(protocol.Prefix(g.shared.cfg.Env)))
	reg, err := g.shared.registry(ctx, g.deps)
	if err != nil {
		return err
	}
	w, err := reg.Watch(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("watch registry: %w", err)
	}
	g.watcher = w
	ready := make(chan struct{})
	go g.followRoutes(w, ready)
	select {
	case <-ready:
	case <-ctx.Done():
		_ = w.Stop()
		return ctx.Err()
	}

	mux := http.NewServeMux()
	// The chat page's socket (/chat/ws) is a function route like any other:
	// deploy the chat example with --route /chat/ws.
	mux.Handle("/chat/ws", g.gw)
	mux.Handle("/chat/", http.StripPrefix("/chat", ws.ChatPage()))
	mux.Handle("/", g.gw)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", g.shared.cfg.HTTP)
	if err != nil {
		_ = w.Stop()
		return fmt.Errorf("gateway: listen %s: %w", g.shared.cfg.HTTP, err)
	}
	g.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(g.deps.Log.Handler(), slog.LevelWarn)}
	go func() {
		defer close(g.done)
		if err := g.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.errMu.Lock()
			g.err = err
			g.errMu.Unlock()
		}
	}()
	fmt.Fprintf(g.deps.Stdout, "gateway: http://%s (functions on their routes, chat page at /chat/)\n", ln.Addr())
	return nil
}

// followRoutes applies every registry change to the gateway's function
// routes; ready is closed once the initial state is applied.
func (g *gatewayComponent) followRoutes(w *registry.Watcher, ready chan struct{}) {
	active := map[string]registry.Record{}
	initial := true
	for ev := range w.Updates() {
		switch ev.Type {
		case registry.EventPut:
			active[ev.Name] = ev.Record
		case registry.EventDelete:
			delete(active, ev.Name)
		case registry.EventReady:
			initial = false
			close(ready)
		}
		if initial {
			continue
		}
		if err := g.gw.SetFunctionRoutes(functionRoutes(active)); err != nil {
			g.deps.Log.Error("gateway: function routes", "err", err)
		}
	}
}

func functionRoutes(active map[string]registry.Record) []gateway.FunctionRoute {
	var out []gateway.FunctionRoute
	for _, rec := range active {
		for _, path := range rec.Routes {
			out = append(out, gateway.FunctionRoute{
				Path: path, Function: rec.Name, Phases: rec.PhaseSet,
				Config: rec.Config, Timeout: rec.Limits.Timeout(),
			})
		}
	}
	return out
}

func (g *gatewayComponent) Done() <-chan struct{} { return g.done }

func (g *gatewayComponent) Err() error {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	return g.err
}

// Drain stops accepting HTTP requests and waits for those in flight, closes
// WebSocket connections (1001 going away), then waits for the gateway's
// background logging calls.
func (g *gatewayComponent) Drain(ctx context.Context) error {
	var errs []error
	if err := g.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	if err := g.edge.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("websocket edge: %w", err))
	}
	if err := g.watcher.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("registry watch: %w", err))
	}
	if err := g.gw.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, nc := range g.conns {
		if err := nc.Drain(); err != nil {
			errs = append(errs, fmt.Errorf("messaging connection: %w", err))
		}
	}
	return errors.Join(errs...)
}

// untilJetStream runs op until it succeeds, waiting while JetStream is not
// ready yet: a cluster that is still forming has no meta leader (requests
// go unanswered until they time out) or cannot place replicas yet. Other
// errors end it at once, as does ctx. Processes started together with
// their NATS cluster then wait for it instead of exiting.
func untilJetStream(ctx context.Context, log *slog.Logger, what string, op func() error) error {
	delay := 250 * time.Millisecond
	for {
		err := op()
		if err == nil || ctx.Err() != nil || !jetStreamNotReady(err) {
			return err
		}
		log.Warn(what+": JetStream not ready; retrying", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// JetStream API error codes of a cluster that is not ready: "no suitable
// peers for placement", "JetStream system temporarily unavailable",
// "insufficient resources".
const (
	jsErrClusterNoPeers        jetstream.ErrorCode = 10005
	jsErrClusterNotAvailable   jetstream.ErrorCode = 10008
	jsErrInsufficientResources jetstream.ErrorCode = 10023
)

func jetStreamNotReady(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jsErrClusterNoPeers, jsErrClusterNotAvailable, jsErrInsufficientResources:
			return true
		}
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}
