package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets resolve p50/p90/p99 between 0.1 ms and 10 ms to within
// ~25%, and still cover slow calls up to the longest sane timeout.
func latencyBuckets() []float64 {
	return []float64{
		0.0001, 0.000125, 0.00016, 0.0002, 0.00025, 0.00032, 0.0004, 0.0005, 0.00063, 0.0008,
		0.001, 0.00125, 0.0016, 0.002, 0.0025, 0.0032, 0.004, 0.005, 0.0063, 0.008,
		0.01, 0.016, 0.025, 0.04, 0.063, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
	}
}

// metrics are the gateway's collectors, registered on the Registerer given
// with WithRegisterer (none by default: collected but not exported).
type metrics struct {
	inflight *prometheus.GaugeVec     // messaging, plugin
	retries  *prometheus.CounterVec   // plugin, phase
	timeouts *prometheus.CounterVec   // plugin, phase
	dlq      *prometheus.CounterVec   // plugin, phase
	dlqLost  *prometheus.CounterVec   // plugin, phase
	errors   *prometheus.CounterVec   // plugin, phase, kind
	shed     *prometheus.CounterVec   // messaging, plugin
	duration *prometheus.HistogramVec // plugin, phase

	httpRequests *prometheus.CounterVec   // route, code
	httpDuration *prometheus.HistogramVec // route
	logDropped   prometheus.Counter
	// routeConflicts is 1 for each function route not installed because
	// another function or a configured route holds it.
	routeConflicts *prometheus.GaugeVec // route, function, owner
	// reloads and lastReloadOK are Prometheus's own pair for its
	// configuration reloads: alert on the gauge being 0, which a failed
	// Reload leaves until one succeeds.
	reloads      *prometheus.CounterVec // result
	lastReloadOK prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plugins_messaging_inflight",
			Help: "Phase calls on the wire, by messaging config and plugin.",
		}, []string{"messaging", "plugin"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugins_messaging_retries_total",
			Help: "Retry attempts of phase calls.",
		}, []string{"plugin", "phase"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugins_messaging_timeouts_total",
			Help: "Phase call attempts that timed out.",
		}, []string{"plugin", "phase"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugins_messaging_dlq_total",
			Help: "Requests published to the dead-letter subject after their last attempt.",
		}, []string{"plugin", "phase"}),
		dlqLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugins_messaging_dlq_lost_total",
			Help: "Dead letters the dead-letter stream did not store: its queue was full, or JetStream did not acknowledge them within 30s.",
		}, []string{"plugin", "phase"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugins_messaging_errors_total",
			Help: "Failed phase call attempts by kind (Timeout, NoResponder, Decode, Plugin, Overloaded, TooLarge, Internal).",
		}, []string{"plugin", "phase", "kind"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plugins_messaging_shed_total",
			Help: "Phase calls skipped by overflow_policy shed.",
		}, []string{"messaging", "plugin"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "plugins_messaging_duration_seconds",
			Help:    "Round trip of phase call attempts that got a reply.",
			Buckets: latencyBuckets(),
		}, []string{"plugin", "phase"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_http_requests_total",
			Help: "HTTP requests answered by the gateway, by route pattern and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nylon_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern.",
			Buckets: latencyBuckets(),
		}, []string{"route"}),
		logDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nylon_gateway_logging_dropped_total",
			Help: "Logging phase calls dropped because the logging queue was full or closed.",
		}),
		routeConflicts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nylon_gateway_route_conflicts",
			Help: "1 for each function route not installed because another function (owner) or a configured route holds the same chi route.",
		}, []string{"route", "function", "owner"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_gateway_config_reloads_total",
			Help: "Configuration reloads (Gateway.Reload, SIGHUP in nylon serve) by result: success or failure.",
		}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nylon_gateway_config_last_reload_successful",
			Help: "1 when the last configuration reload succeeded (or none was tried), 0 when it failed and the previous configuration still serves.",
		}),
	}
	// Both results are exported from the start, so that a rate over them
	// has a zero to start from.
	m.reloads.WithLabelValues(reloadSuccess)
	m.reloads.WithLabelValues(reloadFailure)
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("metrics: %w (one gateway per registry)", err)
			}
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.inflight, m.retries, m.timeouts, m.dlq, m.dlqLost, m.errors, m.shed, m.duration,
		m.httpRequests, m.httpDuration, m.logDropped, m.routeConflicts,
		m.reloads, m.lastReloadOK,
	}
}

// Values of the result label of nylon_gateway_config_reloads_total.
const (
	reloadSuccess = "success"
	reloadFailure = "failure"
)

// reloaded counts a Reload and sets the last result.
func (m *metrics) reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues(reloadSuccess).Inc()
		m.lastReloadOK.Set(1)
		return
	}
	m.reloads.WithLabelValues(reloadFailure).Inc()
	m.lastReloadOK.Set(0)
}

// unregister removes the collectors from reg, when New fails after
// registering them, so that a retry with the same registry works.
func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// seriesLabels are the plugin and route label values some routes count in.
type seriesLabels struct {
	plugins map[string]struct{}
	routes  map[string]struct{}
}

// seriesOf returns the labels of the series that rts count in: their
// patterns and the names of their targets.
func (g *Gateway) seriesOf(rts []*route) seriesLabels {
	s := seriesLabels{plugins: map[string]struct{}{}, routes: map[string]struct{}{}}
	for _, rt := range rts {
		s.routes[rt.pattern] = struct{}{}
		if rt.origin != nil {
			s.plugins[rt.origin.t.name] = struct{}{}
		}
		for _, hops := range [][]*hop{rt.reqFilters, rt.respFilters, rt.bodyFilters, rt.loggers} {
			for _, h := range hops {
				s.plugins[h.t.name] = struct{}{}
			}
		}
	}
	return s
}

// seriesInUse are the labels of c's configured routes and plugins (New
// made the children of every plugin, used by a route or not) and of the
// function routes fn.
func (g *Gateway) seriesInUse(c *conf, fn []*route) seriesLabels {
	s := g.seriesOf(append(slices.Clip(c.static), fn...))
	for name := range c.plugins {
		s.plugins[name] = struct{}{}
	}
	return s
}

// seriesGrace is how long after a route or plugin is removed its series
// are dropped again: calls that were running on it (a first-node wait of
// 10 s, retries, a dead letter stored for up to 30 s) may still count in a
// child, and counting a status code or error kind the route had not
// answered yet makes a new one.
const seriesGrace = 5 * time.Minute

// routeSeries tracks the labels the route table counts in, so that those
// of removed routes and plugins are dropped. Guarded by Gateway.mu.
type routeSeries struct {
	current seriesLabels
	// retired are the labels removed from the table, with when: dropped
	// again once seriesGrace has passed, unless they are back in use.
	retiredPlugins map[string]time.Time
	retiredRoutes  map[string]time.Time
}

// forgetRemoved drops the series of the labels in rs.current that are not
// in now (a function deleted or deployed without a route, a route or
// plugin a Reload removed), and again those removed seriesGrace or longer
// before at; now becomes rs.current. Every deploy under a new function
// name or route would otherwise leave its children (a histogram of 34
// series per phase) in the registry for the life of the process: a
// gateway running for weeks through short-lived functions would grow its
// memory and every scrape without bound. What a straggler counts after
// the second drop is lost; nobody can look a removed route up any more.
func (m *metrics) forgetRemoved(rs *routeSeries, now seriesLabels, at time.Time) {
	if rs.retiredPlugins == nil {
		rs.retiredPlugins, rs.retiredRoutes = map[string]time.Time{}, map[string]time.Time{}
	}
	retire := func(route bool, before, now map[string]struct{}, retired map[string]time.Time) {
		for name := range before {
			if _, used := now[name]; !used {
				retired[name] = at
				m.forgetLabel(route, name)
			}
		}
		for name, since := range retired {
			if _, used := now[name]; used {
				delete(retired, name) // back in use: its series are live again
				continue
			}
			if at.Sub(since) >= seriesGrace {
				delete(retired, name)
				m.forgetLabel(route, name) // what stragglers counted since
			}
		}
	}
	retire(false, rs.current.plugins, now.plugins, rs.retiredPlugins)
	retire(true, rs.current.routes, now.routes, rs.retiredRoutes)
	rs.current = now
}

// forgetLabel drops every series of a route pattern (route) or of a plugin
// or function origin name.
func (m *metrics) forgetLabel(route bool, value string) {
	if route {
		l := prometheus.Labels{"route": value}
		m.httpRequests.DeletePartialMatch(l)
		m.httpDuration.DeletePartialMatch(l)
		return
	}
	l := prometheus.Labels{"plugin": value}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.inflight, m.retries, m.timeouts, m.dlq, m.dlqLost, m.errors, m.shed, m.duration,
	} {
		v.DeletePartialMatch(l)
	}
}

// phaseMetrics are one plugin phase's children, looked up once so the hot
// path does no label hashing.
type phaseMetrics struct {
	inflight prometheus.Gauge
	retries  prometheus.Counter
	timeouts prometheus.Counter
	dlq      prometheus.Counter
	dlqLost  prometheus.Counter
	shed     prometheus.Counter
	duration prometheus.Observer
	errs     *prometheus.CounterVec // curried plugin, phase
}

func (m *metrics) forPhase(messaging, plugin string, ph protocol.Phase) *phaseMetrics {
	phase := ph.String()
	return &phaseMetrics{
		inflight: m.inflight.WithLabelValues(messaging, plugin),
		retries:  m.retries.WithLabelValues(plugin, phase),
		timeouts: m.timeouts.WithLabelValues(plugin, phase),
		dlq:      m.dlq.WithLabelValues(plugin, phase),
		dlqLost:  m.dlqLost.WithLabelValues(plugin, phase),
		shed:     m.shed.WithLabelValues(messaging, plugin),
		duration: m.duration.WithLabelValues(plugin, phase),
		errs:     m.errors.MustCurryWith(prometheus.Labels{"plugin": plugin, "phase": phase}),
	}
}

// statusCounters are one route's nylon_http_requests_total children by
// status code, resolved once per code: WithLabelValues hashes the labels
// (and strconv.Itoa allocates) on every call, while a route answers with a
// handful of distinct codes. The list is copied on write, so counting is a
// load and a short scan.
type statusCounters struct {
	vec  *prometheus.CounterVec // curried with the route
	mu   sync.Mutex             // serializes additions
	list atomic.Pointer[[]statusCounter]
}

type statusCounter struct {
	code int
	c    prometheus.Counter
}

func newStatusCounters(vec *prometheus.CounterVec) *statusCounters {
	return &statusCounters{vec: vec}
}

// inc counts one response with code.
func (s *statusCounters) inc(code int) {
	if l := s.list.Load(); l != nil {
		for _, e := range *l {
			if e.code == code {
				e.c.Inc()
				return
			}
		}
	}
	s.add(code).Inc()
}

// add resolves the child of code, once.
func (s *statusCounters) add(code int) prometheus.Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l []statusCounter
	if p := s.list.Load(); p != nil {
		l = *p
		for _, e := range l {
			if e.code == code {
				return e.c
			}
		}
	}
	c := s.vec.WithLabelValues(strconv.Itoa(code))
	l = append(slices.Clip(l), statusCounter{code: code, c: c})
	s.list.Store(&l)
	return c
}
