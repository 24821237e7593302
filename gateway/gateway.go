package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nylon-functions/nylon/internal/logsample"
	"github.com/nylon-functions/nylon/protocol"
)

// Gateway is the HTTP edge: an http.Handler that matches a route, runs its
// plugin chain over NATS with each plugin's caller policies, proxies to the
// route's origin and answers. It is safe for concurrent use; the route table
// is swapped atomically by SetFunctionRoutes and Reload.
type Gateway struct {
	opts      options
	log       *slog.Logger
	met       *metrics
	rng       *Rand
	transport http.RoundTripper
	// conf is what the configuration sets up: messaging configs, plugins
	// and configured routes. Reload swaps it whole (under mu) before the
	// route table; requests hold the routes, and through them the
	// targets, they started with.
	conf atomic.Pointer[conf]
	// fnRoutes are the routes last given to SetFunctionRoutes, so that
	// Reload rebuilds them over the new messaging configs. Guarded by mu.
	fnRoutes []FunctionRoute

	mu    sync.Mutex // serializes SetFunctionRoutes, Reload and Start
	table atomic.Pointer[routeTable]
	// firstNodeWaiting counts, per function route, the calls waiting for
	// the function's first node (firstnode.go). Kept across tables: every
	// registry change builds new targets, and the calls still waiting on
	// those of the table before must count against the bound too. Guarded
	// by mu.
	firstNodeWaiting map[routeOwner]*atomic.Int32
	// series are the metric labels of the routes, current and removed:
	// SetFunctionRoutes and Reload drop the series of the routes and
	// plugins they remove (metrics.forgetRemoved). Guarded by mu.
	series routeSeries

	session atomic.Uint32
	// sampler bounds the per-request WARN and ERROR lines (logsample):
	// an error storm logs a few examples a second per route and plugin
	// and counts the rest.
	sampler *logsample.Sampler
	// opLog is log sampled per message and header (sampler): the refusals
	// of a plugin's header ops, which a plugin that always sends one
	// would repeat on every request.
	opLog *slog.Logger
	logs  *workQueue[logJob]
	dlq   *dlqWriter
	wire  wirePool
	bufs  bufferPool

	// dlqReady is set once Start has made the dead-letter streams (and
	// set every messaging config's dlq).
	dlqReady atomic.Bool
}

// messaging is a resolved MessagingConfig with its connection and limiter.
type messaging struct {
	cfg       MessagingConfig
	nc        *nats.Conn
	prefix    string
	env       string
	envHeader []string // the Nylon-Env header value, built once
	limiter   *limiter
	replies   *replyMux // shared by the configs on one connection
	// dlq is the stream that keeps this config's dead letters, stored by
	// the dead-letter writer with acknowledgements; set by Start (before
	// serving) once the stream exists. Without it dead letters go out with
	// a core publish.
	dlq *dlqStream
}

// New builds a gateway from cfg (validated here) calling phases over nc,
// which the caller owns and keeps open until Close returns. Call Start to
// create the dead-letter streams, then serve it:
//
//	gw, err := gateway.New(*cfg, nc, gateway.WithRegisterer(reg), gateway.WithLogger(log))
//	if err != nil { ... }
//	defer gw.Close(ctx)
//	if err := gw.Start(ctx); err != nil { ... }
//	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: gw}
func New(cfg Config, nc *nats.Conn, opts ...Option) (*Gateway, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	met, err := newMetrics(o.registerer)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			met.unregister(o.registerer)
		}
	}()
	seed := o.seed
	if !o.seeded {
		var b [8]byte
		_, _ = rand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
	}
	g := &Gateway{
		opts:      o,
		log:       o.logger,
		met:       met,
		rng:       NewRand(seed),
		transport: o.transport,
		sampler:   logsample.New(o.logger, logsample.Config{}),
	}
	g.opLog = slog.New(g.sampler.Handler(o.logger.Handler(), "header"))
	if g.transport == nil {
		g.transport = newTransport()
	}
	c := &conf{cfg: cfg}
	if err := g.setupMessaging(c, nc); err != nil {
		return nil, err
	}
	if err := g.compile(c); err != nil {
		return nil, err
	}
	mux, errs := g.buildMux(c, nil)
	if len(errs) > 0 {
		return nil, fmt.Errorf("gateway: %w", errors.Join(errs...))
	}
	g.conf.Store(c)
	g.table.Store(mux)
	g.series.current = g.seriesInUse(c, nil)
	met.lastReloadOK.Set(1) // the configuration New was given is loaded
	g.logs = newLogPool(g, o.logWorkers, o.logQueue)
	g.dlq = newDLQWriter(g)
	if o.access != nil && !o.access.Enabled(context.Background(), slog.LevelInfo) {
		g.log.Warn("gateway: the access log is on, but its logger drops INFO lines: no access line will be written")
	}
	ok = true
	return g, nil
}

// defaultPrefix is the prefix of configs without one: WithSubjectPrefix,
// else that of WithEnv's environment, else of the default one.
func (g *Gateway) defaultPrefix() string {
	if g.opts.prefix != "" {
		return g.opts.prefix
	}
	env := g.opts.env
	if env == "" {
		env = protocol.DefaultEnv
	}
	return protocol.Prefix(env)
}

// impliedMessaging is the messaging config of a configuration without
// any: named "default", on the default prefix, over the connection New
// (or WithMessagingConn for "default") gives it.
func (g *Gateway) impliedMessaging() MessagingConfig {
	return MessagingConfig{Name: defaultMessagingName, SubjectPrefix: g.defaultPrefix()}
}

func (g *Gateway) setupMessaging(c *conf, nc *nats.Conn) error {
	defaultPrefix := g.defaultPrefix()
	ms := c.cfg.Messaging
	if len(ms) == 0 {
		ms = []MessagingConfig{g.impliedMessaging()}
	}
	muxes := map[*nats.Conn]*replyMux{}
	for _, mc := range ms {
		m := &messaging{cfg: mc, nc: nc, limiter: newLimiter(mc.MaxInflight, mc.OverflowPolicy)}
		if c, ok := g.opts.conns[mc.Name]; ok {
			m.nc = c
		}
		if m.nc == nil {
			return fmt.Errorf("gateway: messaging[%s]: no NATS connection (pass one to New or WithMessagingConn)", mc.Name)
		}
		if muxes[m.nc] == nil {
			muxes[m.nc] = newReplyMux(m.nc)
		}
		m.replies = muxes[m.nc]
		m.env = g.opts.env
		m.prefix = mc.SubjectPrefix
		if m.prefix == "" {
			m.prefix = defaultPrefix
		}
		if m.env == "" {
			m.env = envOfPrefix(m.prefix)
		}
		m.envHeader = []string{m.env}
		c.msgs = append(c.msgs, m)
	}
	c.fnMsg = c.msgs[0]
	if name := g.opts.fnMessaging; name != "" {
		if c.fnMsg = c.messaging(name); c.fnMsg == nil {
			return fmt.Errorf("gateway: function messaging %q: %w: no such messaging config", name, ErrInvalidConfig)
		}
	}
	return nil
}

// envOfPrefix is "prod" for "nylon.prod", else the default env.
func envOfPrefix(prefix string) string {
	if env, ok := strings.CutPrefix(prefix, "nylon."); ok && !strings.Contains(env, ".") {
		return env
	}
	return protocol.DefaultEnv
}

func (c *conf) messaging(name string) *messaging {
	for _, m := range c.msgs {
		if m.cfg.Name == name {
			return m
		}
	}
	return nil
}

// ServeHTTP routes r through the current route table, on its canonical
// path (canonicalRequest).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, ok := canonicalRequest(r)
	if !ok {
		g.badPath(w, r)
		return
	}
	tab := g.table.Load()
	if rt := tab.match(r); rt != nil {
		g.serve(rt, w, r)
		return
	}
	tab.mux.ServeHTTP(w, r)
}

// Close stops accepting logging calls and waits, at most until ctx is done,
// for those queued and in flight; then it abandons the rest and returns
// ctx's error. It does the same for the dead letters still being stored,
// for at most 5 s (what is left then is counted lost). Then it unsubscribes the gateway's reply inboxes:
// call it once the HTTP server has stopped, as phase calls still waiting
// fail as if the connection had closed. Last, it logs the counts of the
// per-request lines it suppressed lately (see docs/GATEWAY.md, Logs). It
// does not close the NATS connection. Safe to call twice.
func (g *Gateway) Close(ctx context.Context) error {
	// Logging calls may dead-letter, so the writer closes after them.
	err := g.logs.close(ctx)
	if derr := g.dlq.close(ctx); err == nil {
		err = derr
	}
	// Reload keeps every config's reply mux: those of the first
	// configuration are all there are.
	for _, m := range g.conf.Load().msgs {
		m.replies.close()
	}
	// The counts of lines suppressed lately, before the process exits.
	g.sampler.Flush()
	return err
}

// RouteInfo describes the route a request matched, for the WebSocket edge.
type RouteInfo struct {
	Pattern  string
	Function string // the function origin, empty for upstream routes
	Config   map[string]string
	Params   map[string]string
	// FirstNodeWait is how long the edge should wait for a first node of
	// the function, deployed moments ago (within a minute, see
	// FunctionRoute.Deployed), when no node answers it yet: the gateway's
	// own bound of that wait (10 s). 0 for any other route.
	FirstNodeWait time.Duration
	// ClientIP is the client's address: the TCP peer's, or behind a
	// trusted proxy (WithTrustedProxies) the one X-Forwarded-For names.
	ClientIP string
	// Scheme is "https" or "http": the connection's, or behind a trusted
	// proxy the one its X-Forwarded-Proto names.
	Scheme string
}

type routeInfoKey struct{}

// RouteOf returns the route a request handed to the WithWebSocket handler
// matched.
func RouteOf(ctx context.Context) (RouteInfo, bool) {
	ri, ok := ctx.Value(routeInfoKey{}).(RouteInfo)
	return ri, ok
}

// target is something the gateway calls phases of, with policies per phase:
// a configured plugin, or a function serving as an origin.
type target struct {
	name     string // the plugin's name: metrics label, logs
	function string
	group    string
	msg      *messaging
	phases   protocol.PhaseSet
	// explicit is true when the phases are known (listed in per_phase, or
	// from the registry): a NoResponder is then an error. Otherwise a phase
	// nobody serves is skipped and remembered for unservedPhaseTTL.
	explicit   bool
	config     map[string]string
	policy     [protocol.PhaseLogging + 1]Policy
	timeoutHdr [protocol.PhaseLogging + 1][]string // the policy's Timeout as a Nylon-Timeout-Ms value
	subject    [protocol.PhaseLogging + 1]string
	dlqSubject [protocol.PhaseLogging + 1]string
	metrics    [protocol.PhaseLogging + 1]*phaseMetrics
	unserved   [protocol.PhaseLogging + 1]atomic.Int64 // unix nanos until which to skip
	// deployed is when a function route's version was deployed: calls
	// wait for a first node within newFunctionGrace of it (firstnode.go);
	// firstNodeWaiting counts the calls waiting, shared with the route's
	// targets of earlier tables (Gateway.firstNodeWaiting); nil: no wait.
	deployed         time.Time
	firstNodeWaiting *atomic.Int32
}

// serves reports whether the phase should be called now.
func (t *target) serves(ph protocol.Phase) bool {
	if !t.phases.Has(ph) {
		return false
	}
	if t.explicit {
		return true
	}
	until := t.unserved[ph].Load()
	return until == 0 || time.Now().UnixNano() >= until
}

func (g *Gateway) newTarget(name, function, group string, m *messaging, phases protocol.PhaseSet, explicit bool, config map[string]string, policy func(protocol.Phase) Policy) *target {
	if group == "" {
		group = function
	}
	t := &target{name: name, function: function, group: group, msg: m, phases: phases, explicit: explicit, config: config}
	for _, ph := range protocol.HTTPPhases {
		t.policy[ph] = policy(ph)
		t.timeoutHdr[ph] = []string{protocol.FormatTimeout(t.policy[ph].Timeout)}
		t.subject[ph] = protocol.PhaseSubject(m.prefix, function, ph)
		t.dlqSubject[ph] = protocol.DLQSubject(m.prefix, function, ph)
		t.metrics[ph] = g.met.forPhase(m.cfg.Name, name, ph)
	}
	return t
}

func (g *Gateway) pluginTarget(c *conf, p *PluginConfig) *target {
	m := c.messaging(p.Messaging)
	phases := protocol.PhaseSetOf(protocol.HTTPPhases[:]...)
	explicit := len(p.PerPhase) > 0
	if explicit {
		phases = 0
		for key := range p.PerPhase {
			ph, _ := protocol.ParsePhase(key) // validated
			phases |= protocol.PhaseSetOf(ph)
		}
	}
	return g.newTarget(p.Name, p.function(), p.Group, m, phases, explicit, p.Config, func(ph protocol.Phase) Policy {
		var phase *PhasePolicy
		if pp, ok := p.PerPhase[ph.String()]; ok {
			phase = &pp
		}
		return resolvePolicy(&m.cfg, &p.PhasePolicy, phase, ph)
	})
}

// FunctionRoute is a route the registry knows: a deployed function that
// answers HTTP at Path (chi pattern) as the origin.
type FunctionRoute struct {
	Path     string
	Function string
	// Phases the function's module handles; only these are called. 0 means
	// request_filter only. A module with WebSocket events marks the route
	// websocket.
	Phases protocol.PhaseSet
	// Config is handed to the function in every invocation.
	Config map[string]string
	// Timeout is the per-attempt timeout of every phase call; 0 = the
	// messaging config's request_timeout_ms.
	Timeout time.Duration
	// MaxBodyBytes is the deployment's max_body_bytes: a larger request
	// body gets 413 before the function is called; 0 = DefaultMaxBodyBytes.
	// The request messages of a route with a limit may be
	// protocol.RequestOverhead larger than the body (the node admits as
	// much), and never larger than the NATS server's max_payload.
	MaxBodyBytes int64
	// Deployed is when the function's version was deployed (the registry
	// record's created_at). For a minute after it, a call that finds no
	// node serving the function waits for one, up to 10 s (the call's
	// timeout, if longer), instead of failing with 503 at once: nodes need
	// a few seconds to load a new module. Zero: never wait.
	Deployed time.Time
}

// SetFunctionRoutes replaces the routes of deployed functions with routes
// and swaps the route table atomically: a new path answers from the next
// request on, a removed one answers 404. Invalid entries are skipped and
// reported in the returned error; the others are installed regardless.
//
// Two routes conflict when chi would file them as one route
// (protocol.RouteKey: the same pattern, or one differing only in parameter
// names, such as /a/{x} and /a/{y}). A configured route wins over a function
// route; between functions, the one whose name sorts first wins, so every
// gateway settles a conflict alike. The admin API refuses a deploy that
// would conflict, so only deploys racing each other get here. A conflict is
// not an error: it is logged at WARN, naming the winner and the loser, when
// it appears, and counted in nylon_gateway_route_conflicts while it lasts.
func (g *Gateway) SetFunctionRoutes(routes []FunctionRoute) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fnRoutes = slices.Clone(routes)
	return g.installRoutes(g.conf.Load(), routes)
}

// installRoutes builds the route table of c's configured routes and the
// function routes, and installs it (see SetFunctionRoutes). Call with mu
// held, c installed.
func (g *Gateway) installRoutes(c *conf, routes []FunctionRoute) error {
	type keyed struct {
		FunctionRoute
		key string
	}
	frs := make([]keyed, len(routes))
	for i, fr := range routes {
		frs[i] = keyed{fr, protocol.RouteKey(fr.Path)}
	}
	sort.SliceStable(frs, func(i, j int) bool {
		a, b := &frs[i], &frs[j]
		if a.key != b.key {
			return a.key < b.key
		}
		if a.Function != b.Function {
			return a.Function < b.Function
		}
		return a.Path < b.Path
	})
	static := map[string]string{} // route key -> configured pattern
	for _, rt := range c.static {
		static[protocol.RouteKey(rt.pattern)] = rt.pattern
	}
	var errs []error
	claimed := map[string]routeOwner{} // route key -> the function route holding it
	lost := map[routeOwner]routeOwner{}
	var dyn []*route
	waiting := make(map[routeOwner]*atomic.Int32, len(frs))
	for i := range frs {
		fr := &frs[i].FunctionRoute
		if err := validateFunctionRoute(fr); err != nil {
			errs = append(errs, fmt.Errorf("function route[%s] %q: %w", fr.Function, fr.Path, err))
			continue
		}
		key, loser := frs[i].key, routeOwner{function: fr.Function, route: fr.Path}
		if pattern, ok := static[key]; ok {
			lost[loser] = routeOwner{route: pattern}
			continue
		}
		if owner, ok := claimed[key]; ok {
			if owner.function != fr.Function {
				lost[loser] = owner
			}
			// else the same function lists the route twice: once is enough.
			continue
		}
		claimed[key] = loser
		w := g.firstNodeWaiting[loser]
		if w == nil {
			w = new(atomic.Int32)
		}
		waiting[loser] = w
		dyn = append(dyn, g.functionRoute(c, fr, w))
	}
	g.firstNodeWaiting = waiting
	mux, mountErrs := g.buildMux(c, dyn)
	errs = append(errs, mountErrs...)
	mux.lost = lost
	g.reportConflicts(g.table.Load().lost, lost)
	g.table.Store(mux)
	g.met.forgetRemoved(&g.series, g.seriesInUse(c, dyn), time.Now())
	g.log.Info("gateway: function routes installed", "routes", len(dyn)-len(mountErrs), "skipped", len(errs), "conflicts", len(lost))
	return errors.Join(errs...)
}

func validateFunctionRoute(fr *FunctionRoute) error {
	if err := protocol.ValidateName(fr.Function); err != nil {
		return err
	}
	if err := checkPattern(fr.Path); err != nil {
		return err
	}
	if fr.Phases == 0 {
		fr.Phases = protocol.PhaseSetOf(protocol.PhaseRequestFilter)
	}
	if fr.Phases&^protocol.PhaseSetOf(protocol.PhaseRequestFilter, protocol.PhaseResponseFilter, protocol.PhaseResponseBodyFilter, protocol.PhaseLogging, protocol.PhaseEvent) != 0 {
		return fmt.Errorf("phases %#x: unknown bits", uint32(fr.Phases))
	}
	if !fr.Phases.Has(protocol.PhaseRequestFilter) && !fr.Phases.WebSocket() {
		return errors.New("the function has neither request_filter nor WebSocket events to answer with")
	}
	if fr.Timeout < 0 {
		return fmt.Errorf("timeout %v: negative", fr.Timeout)
	}
	if fr.MaxBodyBytes < 0 {
		return fmt.Errorf("max body bytes %d: negative", fr.MaxBodyBytes)
	}
	return nil
}

// newTransport is the default upstream transport: http.DefaultTransport's
// settings with more idle connections per host, and no proxy from the
// environment (a reverse proxy reaching its upstreams through HTTP_PROXY
// would surprise).
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// clientIP is r's client address, and whether its TCP peer is a trusted
// proxy (WithTrustedProxies; see realip.Proxies.Resolve). Trusting nobody,
// it is RemoteAddr's host, with no allocation.
func (g *Gateway) clientIP(r *http.Request) (ip string, trustedPeer bool) {
	return g.opts.proxies.Resolve(r.RemoteAddr, r.Header["X-Forwarded-For"])
}

// clientScheme is the scheme the client used: "https" on a TLS connection,
// else "http"; from a trusted proxy (trustedPeer), the one its
// X-Forwarded-Proto names, as a balancer that terminates TLS sends it (and
// Envoy and Traefik read it). Only one value, "http" or "https" in any
// case, is believed: a list or anything else leaves the connection's own.
func clientScheme(r *http.Request, trustedPeer bool) string {
	if trustedPeer {
		if v := r.Header["X-Forwarded-Proto"]; len(v) == 1 {
			switch {
			case strings.EqualFold(v[0], "https"):
				return "https"
			case strings.EqualFold(v[0], "http"):
				return "http"
			}
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
