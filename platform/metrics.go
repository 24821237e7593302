package platform

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/protocol"
)

// Outcomes of a handler execution (label "outcome").
const (
	outcomeNext     = "next"
	outcomeEnd      = "end"
	outcomeError    = "error"    // the guest answered Error
	outcomeTrap     = "trap"     // the guest trapped (panic, bad memory access, ...)
	outcomeTimeout  = "timeout"  // the call ran past the function's timeout
	outcomeInternal = "internal" // the node failed around the call
)

// metrics holds the node's collectors. They are registered on the Config's
// registry (or a private one), never globally.
type metrics struct {
	executions *prometheus.CounterVec
	errors     *prometheus.CounterVec
	traps      *prometheus.CounterVec
	timeouts   *prometheus.CounterVec
	overloaded *prometheus.CounterVec
	dedupHits  *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	inflight   *prometheus.GaugeVec
	duration   *prometheus.HistogramVec
	loadErrors *prometheus.CounterVec
	state      *stateCollector
}

func newMetrics(reg prometheus.Registerer, n *Node) (*metrics, error) {
	fp := []string{"function", "phase"}
	m := &metrics{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_function_executions_total",
			Help: "Handler executions by function, phase and outcome (next, end, error, trap, timeout, internal).",
		}, []string{"function", "phase", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_function_errors_total",
			Help: "Handler executions that failed: the guest's Error action, traps, timeouts and internal failures.",
		}, fp),
		traps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_function_traps_total",
			Help: "Handler executions that trapped; the instance is discarded.",
		}, fp),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_function_timeouts_total",
			Help: "Handler executions stopped at the function's timeout.",
		}, fp),
		overloaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_function_overloaded_total",
			Help: "Requests refused with 503 because every worker was busy and the queue was full.",
		}, fp),
		dedupHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_function_dedup_hits_total",
			Help: "Duplicate deliveries answered from the idempotency cache or by joining the running request.",
		}, fp),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_function_rejected_total",
			Help: "Requests answered with a micro error before running, by code (400 decode, 413 too large, 503 unavailable, 504 expired: every caller had stopped waiting by the time a worker took it).",
		}, []string{"function", "phase", "code"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nylon_function_inflight",
			Help: "Requests accepted and not yet answered: running or queued for a worker.",
		}, []string{"function"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nylon_function_duration_seconds",
			Help:    "Handler execution time, without queueing.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, fp),
		loadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_function_load_errors_total",
			Help: "Versions that could not be fetched, verified or compiled; the previous version keeps serving.",
		}, []string{"function"}),
		state: newStateCollector(n),
	}
	for _, c := range []prometheus.Collector{m.executions, m.errors, m.traps, m.timeouts, m.overloaded,
		m.dedupHits, m.rejected, m.inflight, m.duration, m.loadErrors, m.state} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				err = fmt.Errorf("%w (one node per registry)", err)
			}
			m.unregister(reg)
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range []prometheus.Collector{m.executions, m.errors, m.traps, m.timeouts, m.overloaded,
		m.dedupHits, m.rejected, m.inflight, m.duration, m.loadErrors, m.state} {
		reg.Unregister(c)
	}
}

// forget drops every series of function name once it is no longer served.
func (m *metrics) forget(name string) {
	l := prometheus.Labels{"function": name}
	m.executions.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
	m.traps.DeletePartialMatch(l)
	m.timeouts.DeletePartialMatch(l)
	m.overloaded.DeletePartialMatch(l)
	m.dedupHits.DeletePartialMatch(l)
	m.rejected.DeletePartialMatch(l)
	m.inflight.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	// Prometheus keeps the samples already scraped; a series left behind
	// would only pile up with every function ever deleted.
	m.loadErrors.DeletePartialMatch(l)
}

// phaseMetrics are one endpoint's series, resolved once so the request path
// does no label lookups.
type phaseMetrics struct {
	outcome    [6]prometheus.Counter // indexed by outcome* order below
	errors     prometheus.Counter
	traps      prometheus.Counter
	timeouts   prometheus.Counter
	overloaded prometheus.Counter
	dedupHits  prometheus.Counter
	bad        prometheus.Counter // 400
	tooLarge   prometheus.Counter // 413
	refused    prometheus.Counter // 503 without a version to run
	expired    prometheus.Counter // 504: its callers' Nylon-Timeout-Ms passed in the queue
	duration   prometheus.Observer
	inflight   prometheus.Gauge
}

// Indexes of phaseMetrics.outcome.
const (
	idxNext = iota
	idxEnd
	idxError
	idxTrap
	idxTimeout
	idxInternal
)

func (m *metrics) phase(function string, p protocol.Phase) *phaseMetrics {
	ph := p.String()
	pm := &phaseMetrics{
		errors:     m.errors.WithLabelValues(function, ph),
		traps:      m.traps.WithLabelValues(function, ph),
		timeouts:   m.timeouts.WithLabelValues(function, ph),
		overloaded: m.overloaded.WithLabelValues(function, ph),
		dedupHits:  m.dedupHits.WithLabelValues(function, ph),
		bad:        m.rejected.WithLabelValues(function, ph, "400"),
		tooLarge:   m.rejected.WithLabelValues(function, ph, "413"),
		refused:    m.rejected.WithLabelValues(function, ph, "503"),
		expired:    m.rejected.WithLabelValues(function, ph, "504"),
		duration:   m.duration.WithLabelValues(function, ph),
		inflight:   m.inflight.WithLabelValues(function),
	}
	for i, o := range [...]string{outcomeNext, outcomeEnd, outcomeError, outcomeTrap, outcomeTimeout, outcomeInternal} {
		pm.outcome[i] = m.executions.WithLabelValues(function, ph, o)
	}
	return pm
}

// stateCollector reports, at scrape time, what each function has loaded:
// its deployment version and its instance pool.
type stateCollector struct {
	node                                   *Node
	poolInstances, loadedVersion, degraded *prometheus.Desc
}

func newStateCollector(n *Node) *stateCollector {
	return &stateCollector{
		node: n,
		poolInstances: prometheus.NewDesc("nylon_function_pool_instances",
			"Guest instances of the serving version by state (idle, busy).", []string{"function", "state"}, nil),
		loadedVersion: prometheus.NewDesc("nylon_function_loaded_version",
			"Deployment version this node serves for the function.", []string{"function"}, nil),
		degraded: prometheus.NewDesc("nylon_function_degraded",
			"1 when the function's newest version failed to load (an older one may still serve), else 0.", []string{"function"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.poolInstances
	ch <- c.loadedVersion
	ch <- c.degraded
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.node.functionList() {
		degraded := 0.0
		if _, ok := f.currentLoadError(); ok {
			degraded = 1
		}
		ch <- prometheus.MustNewConstMetric(c.degraded, prometheus.GaugeValue, degraded, f.name)
		rt := f.route.Load()
		if rt == nil {
			continue
		}
		v := rt.cur
		ch <- prometheus.MustNewConstMetric(c.loadedVersion, prometheus.GaugeValue, float64(v.rec.Version), f.name)
		idle, busy := v.poolStats()
		ch <- prometheus.MustNewConstMetric(c.poolInstances, prometheus.GaugeValue, float64(idle), f.name, "idle")
		ch <- prometheus.MustNewConstMetric(c.poolInstances, prometheus.GaugeValue, float64(busy), f.name, "busy")
	}
}
