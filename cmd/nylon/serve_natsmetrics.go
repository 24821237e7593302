package main

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// natsSource is one NATS connection of this process as natsCollector
// reports it: name is its connection label.
type natsSource struct {
	name   string
	nc     *nats.Conn
	events *natsconn.Events
}

// natsSources are the connections serve opened: its own, which the
// registry, node, gateway and admin API share ("serve"), and the own
// connection of each gateway messaging config that names servers
// ("messaging:<name>"). The label is the role, not nats.Name's "nylon serve
// <host>": the host is the scrape's instance already, and a pod's changes
// with every restart.
func (s *serveShared) natsSources(conn *natsconn.Conn) []natsSource {
	out := []natsSource{{name: "serve", nc: conn.NC, events: conn.Events()}}
	s.mu.Lock()
	gw := s.gw
	s.mu.Unlock()
	if gw != nil {
		for _, c := range gw.conns { // set once, when the gateway is built
			out = append(out, natsSource{name: "messaging:" + c.name, nc: c.nc, events: c.events})
		}
	}
	return out
}

// natsCollector exports the NATS connections of this process, and the
// embedded server's clients and slow consumers when serve runs one. It
// reads at scrape time what nats.go and nats-server count anyway
// (nats.Conn.Stats, natsconn.Events, server counters): nothing is added
// per message.
type natsCollector struct {
	sources func() []natsSource
	srv     *server.Server // nil with --nats

	connected, reconnects, disconnects     *prometheus.Desc
	inMsgs, outMsgs, inBytes, outBytes     *prometheus.Desc
	slowConsumers, dropped                 *prometheus.Desc
	serverConnections, serverSlowConsumers *prometheus.Desc
}

func newNATSCollector(srv *server.Server, sources func() []natsSource) *natsCollector {
	conn := []string{"connection"}
	desc := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &natsCollector{
		sources: sources, srv: srv,
		connected: desc("nylon_nats_connected",
			"Whether the NATS connection is connected (1) or not (0: disconnected and reconnecting, or closed). connection is serve for the process's own (registry, node, gateway, admin API), messaging:<name> for a gateway messaging config's own.", conn),
		reconnects: desc("nylon_nats_reconnects_total",
			"Times the NATS connection came back after it was lost (each logged as nats reconnected). Attempts that reached a server, or a proxy in front of one, but failed the handshake are not counted.", conn),
		disconnects: desc("nylon_nats_disconnects_total",
			"Times the NATS connection was lost (the process's own close at shutdown not counted).", conn),
		inMsgs: desc("nylon_nats_in_messages_total",
			"Messages the server delivered to the NATS connection, for any of its subscriptions (JetStream heartbeats included, and messages a slow subscription then dropped).", conn),
		outMsgs: desc("nylon_nats_out_messages_total",
			"Messages the NATS connection published (requests and replies included).", conn),
		inBytes: desc("nylon_nats_in_bytes_total",
			"Bytes of the messages delivered to the NATS connection: headers and payload, not protocol lines.", conn),
		outBytes: desc("nylon_nats_out_bytes_total",
			"Bytes of the messages the NATS connection published: headers and payload, not protocol lines.", conn),
		slowConsumers: desc("nylon_nats_slow_consumers_total",
			"Slow-consumer episodes of the connection's subscriptions: nats.go reports a subscription once when it starts dropping messages over its pending limits, again only after it delivered one since. Each is logged (nats slow consumer, messages dropped).", conn),
		dropped: desc("nylon_nats_dropped_messages_total",
			"Messages the connection's subscriptions dropped over their pending limits (nats.go's Subscription.Dropped, summed over the subscriptions that were slow consumers; drops after a scrape by a subscription that closes before the next are not counted).", conn),
		serverConnections: desc("nylon_nats_server_connections",
			"Client connections of the embedded NATS server, this process's own included; only when serve runs the embedded server.", nil),
		serverSlowConsumers: desc("nylon_nats_server_slow_consumers_total",
			"Slow consumers the embedded NATS server counted (its /varz slow_consumers): a connection that did not read what the server sent fast enough (over max_pending or the write deadline), which the server then closes; one may be counted again while it is closed. Only when serve runs the embedded server.", nil),
	}
}

func (c *natsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.reconnects, c.disconnects, c.inMsgs, c.outMsgs, c.inBytes, c.outBytes,
		c.slowConsumers, c.dropped, c.serverConnections, c.serverSlowConsumers} {
		ch <- d
	}
}

func (c *natsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
	}
	for _, s := range c.sources() {
		connected := 0.0
		if s.nc.IsConnected() {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, connected, s.name)
		st := s.nc.Stats()
		counter(c.inMsgs, st.InMsgs, s.name)
		counter(c.outMsgs, st.OutMsgs, s.name)
		counter(c.inBytes, st.InBytes, s.name)
		counter(c.outBytes, st.OutBytes, s.name)
		ev := s.events.Counts()
		counter(c.disconnects, ev.Disconnects, s.name)
		// Not st.Reconnects: nats.go counts there every attempt whose
		// dial succeeded, though the connection stays down.
		counter(c.reconnects, ev.Reconnects, s.name)
		counter(c.slowConsumers, ev.SlowConsumers, s.name)
		counter(c.dropped, ev.DroppedMsgs, s.name)
	}
	if c.srv != nil {
		ch <- prometheus.MustNewConstMetric(c.serverConnections, prometheus.GaugeValue, float64(c.srv.NumClients()))
		ch <- prometheus.MustNewConstMetric(c.serverSlowConsumers, prometheus.CounterValue, float64(c.srv.NumSlowConsumers()))
	}
}
