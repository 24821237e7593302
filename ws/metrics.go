package ws

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Event outcomes, the "outcome" label of nylon_ws_events_total.
const (
	outcomeOK          = "ok"
	outcomePlugin      = "plugin_error"  // the handler answered action Error
	outcomeService     = "service_error" // a micro error reply (Nats-Service-Error-Code)
	outcomeTimeout     = "timeout"
	outcomeNoResponder = "no_responder"
	outcomeDecode      = "decode_error"
	outcomeTransport   = "transport_error"
)

// metrics are the edge's collectors. They exist even without a registry so
// the hot path never checks for nil.
type metrics struct {
	connections  prometheus.Gauge
	messages     *prometheus.CounterVec // direction: in | out
	messagesIn   prometheus.Counter
	messagesOut  prometheus.Counter
	events       *prometheus.CounterVec // kind, outcome
	eventLatency *prometheus.HistogramVec
	rooms        prometheus.Gauge
	broadcasts   prometheus.Counter
	slowClosed   prometheus.Counter
	deadLetters  prometheus.Counter
	dlqLost      prometheus.Counter
	rejected     *prometheus.CounterVec // reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nylon_ws_connections",
			Help: "Open WebSocket connections.",
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_ws_messages_total",
			Help: "WebSocket messages read from clients (in) and written to clients (out).",
		}, []string{"direction"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_ws_events_total",
			Help: "WebSocket events sent to functions, by kind and outcome.",
		}, []string{"kind", "outcome"}),
		eventLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nylon_ws_event_duration_seconds",
			Help:    "Round trip of a WebSocket event to its function, retries included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"kind"}),
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nylon_ws_rooms",
			Help: "Rooms with at least one member on this edge (one NATS subscription each).",
		}),
		broadcasts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nylon_ws_broadcasts_total",
			Help: "Broadcasts published to room subjects.",
		}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nylon_ws_slow_closed_total",
			Help: "Connections closed with 1008 because their send queue was full.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nylon_ws_dead_letters_total",
			Help: "Events published to the dead-letter subject after a transport failure.",
		}),
		dlqLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nylon_ws_dead_letters_lost_total",
			Help: "Dead letters neither published nor accepted by the dead-letter sink: the publish failed, or the sink refused them (its queue full or closed, no stream for the subject).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nylon_ws_rejected_total",
			Help: "Upgrade requests refused before the handshake, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		var err error
		m.connections = register(reg, m.connections, &err)
		m.messages = register(reg, m.messages, &err)
		m.events = register(reg, m.events, &err)
		m.eventLatency = register(reg, m.eventLatency, &err)
		m.rooms = register(reg, m.rooms, &err)
		m.broadcasts = register(reg, m.broadcasts, &err)
		m.slowClosed = register(reg, m.slowClosed, &err)
		m.deadLetters = register(reg, m.deadLetters, &err)
		m.dlqLost = register(reg, m.dlqLost, &err)
		m.rejected = register(reg, m.rejected, &err)
		if err != nil {
			return nil, err
		}
	}
	m.messagesIn = m.messages.WithLabelValues("in")
	m.messagesOut = m.messages.WithLabelValues("out")
	return m, nil
}

// register adds c to reg, or returns the collector of the same type already
// registered under the same descriptor, so several edges in one process can
// share a registry. After the first failure it only returns c.
func register[T prometheus.Collector](reg prometheus.Registerer, c T, errp *error) T {
	if *errp != nil {
		return c
	}
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing
		}
	}
	*errp = fmt.Errorf("register ws metrics: %w", err)
	return c
}

func (m *metrics) event(kind, outcome string) { m.events.WithLabelValues(kind, outcome).Inc() }
