package gateway

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// hop is a target as one route calls it: with the route's config merged
// over the target's.
type hop struct {
	t      *target
	config []protocol.KV
}

// route is a compiled route: its chain split by phase, its origin, and its
// reverse proxy.
type route struct {
	pattern     string
	methods     []string
	dynamic     bool
	websocket   bool
	upstream    *url.URL
	origin      *hop // function origin; nil for upstream routes
	stripPrefix string
	maxBody     int64
	config      map[string]string
	// headerTimeout bounds the upstream's wait for response headers
	// (headerTimer); upstream routes only.
	headerTimeout time.Duration

	reqFilters  []*hop // request_filter, in chain order (origin excluded)
	respFilters []*hop // response_filter, chain order then origin
	bodyFilters []*hop
	loggers     []*hop
	needBody    bool // something reads the request body: buffer it

	proxy    *httputil.ReverseProxy
	requests *statusCounters
	duration prometheus.Observer
}

// staticRoute compiles a configured route of c.
func (g *Gateway) staticRoute(c *conf, rc *RouteConfig) (*route, error) {
	rt := &route{
		pattern:     rc.Path,
		websocket:   rc.WebSocket,
		stripPrefix: rc.StripPrefix,
		maxBody:     rc.MaxBodyBytes,
		config:      rc.Config,
	}
	if len(rc.Methods) > 0 {
		rt.methods = routeMethods(rc.Methods)
	}
	var chain []*hop
	for _, name := range rc.Plugins {
		chain = append(chain, &hop{t: c.plugins[name], config: mergeConfig(c.plugins[name].config, rc.Config)})
	}
	switch {
	case rc.Upstream != "":
		u, err := url.Parse(rc.Upstream)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		rt.upstream = u
		rt.headerTimeout = DefaultResponseHeaderTimeout
		if rc.ResponseHeaderTimeoutMs > 0 {
			rt.headerTimeout = time.Duration(rc.ResponseHeaderTimeoutMs) * time.Millisecond
		}
	case c.plugins[rc.Function] != nil:
		t := c.plugins[rc.Function]
		rt.origin = &hop{t: t, config: mergeConfig(t.config, rc.Config)}
	default:
		m := c.fnMsg
		if rc.Messaging != "" {
			m = c.messaging(rc.Messaging)
		}
		// Phases of a configured function origin are unknown: it answers
		// request_filter, the only phase an origin needs.
		t := g.newTarget(rc.Function, rc.Function, "", m, protocol.PhaseSetOf(protocol.PhaseRequestFilter), true, nil,
			func(ph protocol.Phase) Policy { return resolvePolicy(&m.cfg, nil, nil, ph) })
		rt.origin = &hop{t: t, config: mergeConfig(nil, rc.Config)}
	}
	g.finishRoute(rt, chain)
	return rt, nil
}

// functionRoute compiles a route of a deployed function over c's function
// messaging config; waiting counts the route's calls waiting for a first
// node.
func (g *Gateway) functionRoute(c *conf, fr *FunctionRoute, waiting *atomic.Int32) *route {
	m := c.fnMsg
	pp := &PhasePolicy{}
	if fr.Timeout > 0 {
		pp.TimeoutMs = int(max(fr.Timeout.Milliseconds(), 1))
	}
	if fr.MaxBodyBytes > 0 {
		// A body at the limit must fit in the message with the rest of
		// the request, as the node sizes it.
		pp.MaxPayloadBytes = int(fr.MaxBodyBytes) + protocol.RequestOverhead
	}
	t := g.newTarget(fr.Function, fr.Function, "", m, fr.Phases, true, fr.Config,
		func(ph protocol.Phase) Policy { return resolvePolicy(&m.cfg, pp, nil, ph) })
	t.deployed, t.firstNodeWaiting = fr.Deployed, waiting
	rt := &route{
		pattern:   fr.Path,
		dynamic:   true,
		websocket: fr.Phases.WebSocket(),
		maxBody:   fr.MaxBodyBytes,
		config:    fr.Config,
	}
	if fr.Phases.Has(protocol.PhaseRequestFilter) {
		rt.origin = &hop{t: t, config: mergeConfig(fr.Config, nil)}
	} else {
		// WebSocket-only: plain HTTP requests get 426.
		rt.origin = &hop{t: t}
	}
	g.finishRoute(rt, nil)
	return rt
}

// finishRoute splits the chain by phase and builds the proxy.
func (g *Gateway) finishRoute(rt *route, chain []*hop) {
	if rt.maxBody == 0 {
		rt.maxBody = DefaultMaxBodyBytes
	}
	all := chain
	if rt.origin != nil {
		all = append(slices.Clip(chain), rt.origin)
	}
	for _, h := range chain {
		if h.t.phases.Has(protocol.PhaseRequestFilter) {
			rt.reqFilters = append(rt.reqFilters, h)
		}
	}
	for _, h := range all {
		if h.t.phases.Has(protocol.PhaseResponseFilter) {
			rt.respFilters = append(rt.respFilters, h)
		}
		if h.t.phases.Has(protocol.PhaseResponseBodyFilter) {
			rt.bodyFilters = append(rt.bodyFilters, h)
		}
		if h.t.phases.Has(protocol.PhaseLogging) {
			rt.loggers = append(rt.loggers, h)
		}
	}
	rt.needBody = len(rt.reqFilters) > 0 || (rt.origin != nil && rt.origin.t.phases.Has(protocol.PhaseRequestFilter))
	rt.requests = newStatusCounters(g.met.httpRequests.MustCurryWith(prometheus.Labels{"route": rt.pattern}))
	rt.duration = g.met.httpDuration.WithLabelValues(rt.pattern)
	rt.proxy = g.newProxy(rt)
}

// mergeConfig is base with over's entries replacing, sorted by key.
func mergeConfig(base, over map[string]string) []protocol.KV {
	m := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	kvs := make([]protocol.KV, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, protocol.KV{Key: k, Value: v})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	return kvs
}

// buildMux builds a route table: c's configured routes first, then dyn. A
// route chi refuses (a pattern conflicting with another) is skipped and
// reported.
func (g *Gateway) buildMux(c *conf, dyn []*route) (*routeTable, []error) {
	tab := newRouteTable(g.notFound, g.methodNotAllowed)
	var errs []error
	for _, rts := range [][]*route{c.static, dyn} {
		for _, rt := range rts {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(rt, w, r) })
			if err := tab.add(rt, h); err != nil {
				if rt.dynamic {
					g.log.Error("gateway: function route skipped", "route", rt.pattern, "function", rt.origin.t.function, "error", err)
				}
				errs = append(errs, err)
			}
		}
	}
	return tab, errs
}

func (g *Gateway) notFound(w http.ResponseWriter, r *http.Request) {
	g.met.httpRequests.WithLabelValues("", "404").Inc()
	g.answerUnrouted(w, r, Problem{Type: ProblemNotFound, Title: "Not Found", Status: http.StatusNotFound,
		Detail: "no route matches this path", Instance: r.URL.Path, RequestID: protocol.NewRequestID().String()})
}

func (g *Gateway) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	g.met.httpRequests.WithLabelValues("", "405").Inc()
	g.answerUnrouted(w, r, Problem{Type: ProblemMethodNotAllowed, Title: "Method Not Allowed", Status: http.StatusMethodNotAllowed,
		Detail: "the route does not accept " + r.Method, Instance: r.URL.Path, RequestID: protocol.NewRequestID().String()})
}
