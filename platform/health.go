package platform

import (
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
)

// Health is the /healthz document.
//
// Status is "ok", "degraded" or "unavailable":
//   - unavailable: the node cannot serve — NATS is not connected, or the
//     node is not started yet, is draining or has stopped. /healthz answers
//     503.
//   - degraded: the node serves, but at least one function's newest version
//     failed to load (an older version keeps serving: state "degraded"; or
//     none was ever loaded: state "failed"). /healthz answers 200, because
//     the node itself is healthy and restarting or unrouting it would not
//     fix a bad module (every node fails the same bytes); alert on the
//     body or on nylon_function_degraded instead, or ask /healthz?strict=1,
//     which answers 503 for degraded too.
//   - ok: everything active in the registry is served. 200.
type Health struct {
	Status    string           `json:"status"`
	NodeID    string           `json:"node_id,omitempty"`
	Env       string           `json:"env"`
	State     string           `json:"state,omitempty"` // new, starting, serving, draining, stopped
	NATS      NATSHealth       `json:"nats"`
	Functions []FunctionHealth `json:"functions"`
}

// Health statuses.
const (
	HealthOK          = "ok"
	HealthDegraded    = "degraded"
	HealthUnavailable = "unavailable"
)

// NATSHealth is the connection's state.
type NATSHealth struct {
	Connected bool   `json:"connected"`
	Status    string `json:"status"`
	Server    string `json:"server,omitempty"`
}

// FunctionHealth is one function as this node serves it.
type FunctionHealth struct {
	Name string `json:"name"`
	// State is "serving", "loading" (no version yet), "degraded" (the
	// newest version failed to load, an older one serves) or "failed"
	// (nothing could be loaded).
	State string `json:"state"`
	// Version, SHA256 and Phases describe the serving version.
	Version  uint64    `json:"version,omitempty"`
	SHA256   string    `json:"sha256,omitempty"`
	Phases   []string  `json:"phases,omitempty"`
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	// Desired is the version the registry made active.
	Desired uint64 `json:"desired_version,omitempty"`
	// Error is the latest load failure, of version ErrorVersion.
	Error        string    `json:"error,omitempty"`
	ErrorVersion uint64    `json:"error_version,omitempty"`
	ErrorAt      time.Time `json:"error_at,omitzero"`
	Inflight     int64     `json:"inflight"`
	Workers      int       `json:"workers,omitempty"`
}

// Function states.
const (
	FunctionServing  = "serving"
	FunctionLoading  = "loading"
	FunctionDegraded = "degraded"
	FunctionFailed   = "failed"
)

// HealthReporter is what the admin API's /healthz asks; *Node implements it.
type HealthReporter interface {
	Health() Health
}

// Health reports the node's state: NATS, lifecycle and every function.
func (n *Node) Health() Health {
	n.mu.Lock()
	state := n.state
	n.mu.Unlock()
	h := Health{
		NodeID:    n.cfg.NodeID,
		Env:       n.cfg.Env,
		State:     state.String(),
		NATS:      natsHealth(n.nc),
		Functions: []FunctionHealth{},
	}
	degraded := false
	for _, f := range n.functionList() {
		fh := f.health()
		if fh.State == FunctionDegraded || fh.State == FunctionFailed {
			degraded = true
		}
		h.Functions = append(h.Functions, fh)
	}
	switch {
	case !h.NATS.Connected || state != stateServing:
		h.Status = HealthUnavailable
	case degraded:
		h.Status = HealthDegraded
	default:
		h.Status = HealthOK
	}
	return h
}

func (f *function) health() FunctionHealth {
	le, failed := f.currentLoadError()
	f.mu.Lock()
	desired := f.desired
	f.mu.Unlock()
	fh := FunctionHealth{Name: f.name, Desired: desired, State: FunctionLoading}
	if rt := f.route.Load(); rt != nil {
		v := rt.cur
		fh.State = FunctionServing
		fh.Version, fh.SHA256, fh.Phases = v.rec.Version, v.rec.SHA256, v.phases.Names()
		fh.LoadedAt, fh.Workers = v.loadedAt.UTC(), v.workers
		fh.Inflight = v.inflight()
		if rt.prev != nil {
			fh.Inflight += rt.prev.inflight()
		}
	}
	if failed {
		fh.Error, fh.ErrorVersion, fh.ErrorAt = le.text, le.version, le.at.UTC()
		if fh.State == FunctionServing {
			fh.State = FunctionDegraded
		} else {
			fh.State = FunctionFailed
		}
	}
	return fh
}

func natsHealth(nc *nats.Conn) NATSHealth {
	if nc == nil {
		return NATSHealth{Status: "none"}
	}
	h := NATSHealth{Connected: nc.IsConnected(), Status: nc.Status().String()}
	if h.Connected {
		h.Server = nc.ConnectedUrlRedacted()
	}
	return h
}

// healthStatus is the HTTP status of h: 503 when unavailable, and with
// strict also when degraded.
func healthStatus(h Health, strict bool) int {
	if h.Status == HealthUnavailable || strict && h.Status == HealthDegraded {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}
