package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/natsconn"
	"github.com/nylon-functions/nylon/internal/realip"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
	"github.com/nylon-functions/nylon/ws"
)

// serveShared holds what several components of one serve process use: the
// Prometheus registry /metrics serves, the function registry, the wasm host
// (one runtime and compilation cache for the node and upload validation),
// and the node and gateway (/healthz reports them). Built lazily in table
// order; closed by serve after every component drained.
type serveShared struct {
	cfg     *serveConfig
	gwCfg   gateway.Config // --gateway-config, loaded and checked before anything started
	tls     serveTLS       // the listeners' certificates, loaded before anything started
	Metrics *prometheus.Registry

	mu   sync.Mutex
	reg  *registry.Registry
	host *wasmhost.Host
	node *platform.Node
	gw   *gatewayComponent
	// reloadPending: a SIGHUP asked for a gateway reload before the
	// gateway was built; buildGateway reloads as soon as it is.
	reloadPending bool
}

func newServeShared(cfg *serveConfig, gwCfg gateway.Config, certs serveTLS) *serveShared {
	m := prometheus.NewRegistry()
	m.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &serveShared{cfg: cfg, gwCfg: gwCfg, tls: certs, Metrics: m}
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
		WithLogger(d.Log).
		WithIdleTimeout(s.cfg.Function.IdleTimeout).
		WithCompilationCacheMaxBytes(s.cfg.Function.compileCacheMaxBytes())
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
// first, so functions are served before the edges send traffic; the --admin
// listener, which every process runs, last, so /healthz answers once the
// rest serves and stops answering first on drain.
func serveComponents(s *serveShared) []componentSpec {
	return []componentSpec{
		{name: "node", role: roleNode, build: s.buildNode},
		{name: "gateway", role: roleGateway, build: s.buildGateway},
		{name: "admin", build: s.buildAdmin},
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
	ncfg := platform.Config{
		NATS: d.NATS.NC, Registry: reg, Host: host, Env: s.cfg.Env, SubjectPrefix: s.cfg.prefix(), NodeID: s.cfg.NodeID,
		Logger: d.Log, Metrics: s.Metrics,
	}
	s.cfg.Function.apply(&ncfg)
	n, err := platform.NewNode(ncfg)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.node = n
	s.mu.Unlock()
	fmt.Fprintf(d.Stdout, "node: %s serving functions on %s.>\n", n.ID(), s.cfg.prefix())
	return n, nil
}

func (s *serveShared) buildGateway(ctx context.Context, d serveDeps) (component, error) {
	gcfg := s.gwCfg
	// runServe checked this before anything started; checked again so the
	// rule holds however the config got here.
	if err := gcfg.CheckSecurity(s.cfg.Env); err != nil {
		return nil, err
	}
	// A messaging config that names servers gets a connection of its own,
	// with the YAML's tls and auth; the others use serve's connection, with
	// serve's TLS and credentials: --nats (NYLON_NATS_URLS), or the embedded
	// server. gateway.ApplyEnv is not applied: in serve NYLON_NATS_URLS is
	// --nats and nothing else, so it cannot turn a config that shares serve's
	// connection into one that dials without serve's credentials.
	var own []namedConn
	closeOwn := func() {
		for _, c := range own {
			c.nc.Close()
		}
	}
	// Messaging configs without a subject_prefix of their own, the
	// implicit one included, call on serve's prefix; so do the function
	// routes, over the first config, unless its YAML names another prefix.
	prefix := s.cfg.prefix()
	opts := []gateway.Option{gateway.WithLogger(d.Log), gateway.WithRegisterer(s.Metrics), gateway.WithEnv(s.cfg.Env),
		gateway.WithSubjectPrefix(prefix), gateway.WithReplicas(s.cfg.Replicas), gateway.WithTrustedProxies(s.cfg.TrustedProxies...)}
	if s.cfg.AccessLog {
		// The same logger: --log-format applies, and --log-level must let INFO through.
		opts = append(opts, gateway.WithAccessLog(d.Log))
	}
	if p, err := realip.Parse(s.cfg.TrustedProxies); err == nil && p.Len() > 0 {
		// Who may set the client address is worth seeing in the start-up
		// log: a prefix too wide lets clients claim any address.
		d.Log.Info("gateway: client addresses from X-Forwarded-For of trusted proxies", "trusted_proxies", strings.Join(p.Strings(), ","))
	}
	for i := range gcfg.Messaging {
		mc := &gcfg.Messaging[i]
		if len(mc.Servers) == 0 {
			continue
		}
		// Logged and counted as serve's own is (nylon_nats_*).
		ev := natsconn.NewEvents(d.Log.With("messaging", mc.Name))
		nc, err := mc.Connect(ev.Options()...)
		if err != nil {
			closeOwn()
			return nil, fmt.Errorf("gateway: %w", err)
		}
		own = append(own, namedConn{name: mc.Name, nc: nc, events: ev})
		opts = append(opts, gateway.WithMessagingConn(mc.Name, nc))
	}
	// The edge is built first, as the gateway takes its handler; its dead
	// letters go to the gateway's writer, through gw once it is set.
	var gw *gateway.Gateway
	edgeOpts := []ws.Option{ws.WithLogger(d.Log), ws.WithRegistry(s.Metrics)}
	if o := edgeDeadLetters(&gw, gcfg, prefix); o != nil {
		edgeOpts = append(edgeOpts, o)
	}
	wcfg := ws.Config{Env: s.cfg.Env, SubjectPrefix: prefix}
	s.cfg.WS.apply(&wcfg)
	if mp := d.NATS.NC.MaxPayload(); int64(s.cfg.WS.MaxMessageBytes) > mp {
		// Not refused: the servers' max_payload may be raised later. Until
		// then a message whose event is over it closes its connection
		// with 1011.
		d.Log.Warn("--ws-max-message-bytes is over the NATS servers' max_payload: larger client messages cannot reach a function and close their connection with 1011",
			"ws_max_message_bytes", s.cfg.WS.MaxMessageBytes, "max_payload", mp)
	}
	edge, err := ws.New(wcfg, d.NATS.NC, edgeOpts...)
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
		ctx := ws.WithFirstNodeWait(ws.WithParams(r.Context(), info.Params), info.FirstNodeWait)
		// The gateway resolved them behind --trusted-proxies.
		ctx = ws.WithScheme(ws.WithClientIP(ctx, info.ClientIP), info.Scheme)
		edge.ServeFunction(w, r.WithContext(ctx), info.Function, info.Config)
	})
	gw, err = gateway.New(gcfg, d.NATS.NC, append(opts, gateway.WithWebSocket(wsHandler))...)
	if err != nil {
		_ = edge.Close(context.Background())
		closeOwn()
		return nil, err
	}
	g := &gatewayComponent{shared: s, deps: d, gw: gw, edge: edge, conns: own, done: make(chan struct{}), state: stateStarting}
	s.mu.Lock()
	s.gw = g
	pending := s.reloadPending
	s.reloadPending = false
	s.mu.Unlock()
	if pending {
		// The file may have changed after serve read it: what the
		// signal asked for is done now, not lost.
		d.Log.Info("SIGHUP during start-up: reloading the gateway configuration now that the gateway is built",
			"file", s.cfg.GatewayConfig)
		s.reloadGateway(ctx, d.Log)
	}
	return g, nil
}

// namedConn is a messaging config's own connection.
type namedConn struct {
	name   string
	nc     *nats.Conn
	events *natsconn.Events
}

// States of the gateway component, as /healthz reports them.
const (
	stateStarting = "starting"
	stateServing  = "serving"
	stateDraining = "draining"
	stateStopped  = "stopped"
)

// gatewayComponent serves the HTTP gateway and WebSocket edge on --http,
// the chat page on /chat/, and keeps the gateway's function routes in step
// with the registry.
type gatewayComponent struct {
	shared *serveShared
	deps   serveDeps
	gw     *gateway.Gateway
	edge   *ws.Edge
	conns  []namedConn // the messaging configs' own connections

	srv     *http.Server
	watcher *registry.Watcher
	done    chan struct{}

	mu    sync.Mutex
	err   error
	state string
	addr  string
}

func (g *gatewayComponent) Start(ctx context.Context) error {
	if err := untilJetStream(ctx, g.deps.Log, "gateway", func() error { return g.gw.Start(ctx) }); err != nil {
		return err
	}
	warnSingleCopy(ctx, g.deps, gateway.DLQStreamName(g.shared.cfg.prefix()))
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
	// deploy the chat example with --route /chat/ws. listenerPaths tells the
	// admin API about this mux.
	mux.Handle("/chat/ws", g.gw)
	mux.Handle("/chat/", http.StripPrefix("/chat", ws.ChatPage()))
	mux.Handle("/", g.gw)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", g.shared.cfg.HTTP)
	if err != nil {
		_ = w.Stop()
		return fmt.Errorf("gateway: listen %s: %w", g.shared.cfg.HTTP, err)
	}
	lim := g.shared.cfg.HTTPLimits
	ln = lim.listener(ln)
	g.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: lim.headerTimeout(),
		ReadTimeout:       lim.ReadTimeout,
		IdleTimeout:       lim.IdleTimeout,
		ErrorLog:          serverErrorLog(g.deps.Log),
		TLSConfig:         g.shared.tls.HTTP,
	}
	g.mu.Lock()
	g.state, g.addr = stateServing, ln.Addr().String()
	g.mu.Unlock()
	go func() {
		defer close(g.done)
		err := serveHTTP(g.srv, ln)
		g.mu.Lock()
		defer g.mu.Unlock()
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.err = err
		}
		if g.state == stateServing {
			g.state = stateStopped
		}
	}()
	fmt.Fprintf(g.deps.Stdout, "gateway: %s://%s (functions on their routes, chat page at /chat/)\n", scheme(g.shared.tls.HTTP), ln.Addr())
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
		if err := g.gw.SetFunctionRoutes(functionRoutes(active, g.shared.cfg.Function.Timeout)); err != nil {
			g.deps.Log.Error("gateway: function routes", "err", err)
		}
	}
}

// listenerPaths are the paths of the --http listener's mux (see
// gatewayComponent.Start) as platform.AdminConfig.ReservedPaths wants them:
// true for what the listener answers itself (the chat page), false for an
// exception it hands to the gateway. The admin API refuses routes the
// gateway would never see.
func listenerPaths() map[string]bool { return map[string]bool{"/chat/": true, "/chat/ws": false} }

// functionRoutes are the gateway routes of the active records. nodeTimeout
// is the node's default for records without a timeout (--function-timeout;
// 0: the platform's).
//
// The routes carry no config: the node adds the config of the version it
// runs. Sent from the active record, it would reach the version before it
// too, in the moments after a deploy or rollback while nodes still run the
// old module, which would then see the new version's settings (a key the
// gateway sends wins over the node's).
func functionRoutes(active map[string]registry.Record, nodeTimeout time.Duration) []gateway.FunctionRoute {
	var out []gateway.FunctionRoute
	for _, rec := range active {
		for _, path := range rec.Routes {
			out = append(out, gateway.FunctionRoute{
				Path: path, Function: rec.Name, Phases: rec.PhaseSet,
				Timeout: callTimeout(rec.Limits.Timeout(), nodeTimeout), MaxBodyBytes: rec.Limits.MaxBodyBytes,
				Deployed: rec.CreatedAt,
			})
		}
	}
	return out
}

// callTimeout is how long the gateway waits for one call of a function
// whose handler may run for fn (0: the node's default). The node starts
// the handler's clock only when a worker takes the request, and decoding,
// stopping a handler that overran and the reply's trip come on top: with
// the handler's own timeout the gateway would always give up first, answer
// 504 and dead-letter a request the node was about to answer with its
// timeout error (a 500, not worth replaying). The margin is 10 %, at least
// 250 ms.
func callTimeout(fn, nodeTimeout time.Duration) time.Duration {
	if fn <= 0 {
		fn = cmp.Or(nodeTimeout, platform.DefaultTimeout)
	}
	return fn + max(250*time.Millisecond, fn/10)
}

func (g *gatewayComponent) Done() <-chan struct{} { return g.done }

func (g *gatewayComponent) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *gatewayComponent) setState(state string) {
	g.mu.Lock()
	g.state = state
	g.mu.Unlock()
}

// Drain stops accepting HTTP requests and waits for those in flight, closes
// WebSocket connections (1001 going away), then waits for the gateway's
// background logging calls.
func (g *gatewayComponent) Drain(ctx context.Context) error {
	g.setState(stateDraining)
	defer g.setState(stateStopped)
	var errs []error
	if err := g.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	// The edge before the gateway: its dead letters go to the gateway's
	// writer, which gw.Close drains, and it makes none once Close returns.
	if err := g.edge.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("websocket edge: %w", err))
	}
	if err := g.watcher.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("registry watch: %w", err))
	}
	if err := g.gw.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, c := range g.conns {
		if err := natsconn.Drain(ctx, c.nc); err != nil {
			errs = append(errs, fmt.Errorf("messaging[%s] connection: %w", c.name, err))
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
