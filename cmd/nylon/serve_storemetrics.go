package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// storeCollector exports what /healthz says of JetStream (jetstream.status)
// as a Prometheus state set, so that operators alert on it the way they
// alert on everything else: nylon_jetstream_store{status="failing"} == 1.
// It asks at scrape time; StoreHealth answers from a cache at most a second
// old and waits at most 300 ms for a fresh check.
type storeCollector struct {
	conn *natsconn.Conn
	desc *prometheus.Desc
}

func newStoreCollector(conn *natsconn.Conn) *storeCollector {
	return &storeCollector{conn: conn, desc: prometheus.NewDesc("nylon_jetstream_store",
		"Whether JetStream stores this process's writes, as /healthz reports it (jetstream.status): 1 for the current status of ok, failing (a stream stopped by a write error, or a registry write not acknowledged) and unknown (the embedded server's check did not answer).",
		[]string{"status"}, nil)}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	// A scrape has no context of its own here; StoreHealth bounds its own
	// wait, and this bounds it once more.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st := c.conn.StoreHealth(ctx).Status
	for _, s := range [...]string{natsconn.StoreOK, natsconn.StoreFailing, natsconn.StoreUnknown} {
		v := 0.0
		if s == st {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, s)
	}
}
