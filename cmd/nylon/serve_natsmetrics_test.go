package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/natsconn"
	"github.com/nylon-functions/nylon/internal/testutil"
)

const serveConnLabel = `connection="serve"`

// natsConnMetric is metricValue of family for one connection, failing the
// test when /metrics has no such series.
func natsConnMetric(t *testing.T, admin, family, conn string) float64 {
	t.Helper()
	v, ok := metricValue(t, admin, family, conn)
	if !ok {
		t.Fatalf("/metrics has no %s{%s}", family, conn)
	}
	return v
}

// serverMetric reads the unlabelled sample of family from base/metrics;
// false when there is none.
func serverMetric(t *testing.T, base, family string) (float64, bool) {
	t.Helper()
	_, body := httpGet(t, base+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(family) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: sample %q: %v", family, m[1], err)
	}
	return v, true
}

// Serve's /metrics has its NATS connection: connected, with message and
// byte counters that calls through the gateway to the node move, and
// nothing lost. Its embedded server's clients and slow consumers are there
// too: a client that stops reading what it subscribed to is counted as a
// slow consumer.
func TestServeMetricsNATSConnection(t *testing.T) {
	b := startCmd(t, serveArgs(t)...)
	b.waitLine(t, readyLine)
	admin, gw, natsURL := b.waitLine(t, adminLine), b.waitLine(t, gatewayLine), b.waitLine(t, natsLine)

	if v := natsConnMetric(t, admin, "nylon_nats_connected", serveConnLabel); v != 1 {
		t.Errorf("nylon_nats_connected = %v, want 1", v)
	}
	for _, f := range []string{"nylon_nats_reconnects_total", "nylon_nats_disconnects_total", "nylon_nats_slow_consumers_total", "nylon_nats_dropped_messages_total"} {
		if v := natsConnMetric(t, admin, f, serveConnLabel); v != 0 {
			t.Errorf("%s = %v, want 0", f, v)
		}
	}

	deployModule(t, admin, "hello", testutil.Wasm(t, "functions/examples/hello"), url.Values{"route": {"/hi"}})
	testutil.Eventually(t, 60*time.Second, 20*time.Millisecond, func() error {
		if code, _ := httpGet(t, gw+"/hi"); code != http.StatusOK {
			return fmt.Errorf("GET /hi = %d", code)
		}
		return nil
	})
	counters := []string{"nylon_nats_in_messages_total", "nylon_nats_out_messages_total", "nylon_nats_in_bytes_total", "nylon_nats_out_bytes_total"}
	before := map[string]float64{}
	for _, f := range counters {
		before[f] = natsConnMetric(t, admin, f, serveConnLabel)
	}
	const calls = 5
	for range calls {
		if code, body := httpGet(t, gw+"/hi"); code != http.StatusOK {
			t.Fatalf("GET /hi = %d %s", code, body)
		}
	}
	// Each call is a request the gateway publishes and the node receives,
	// and a reply the node publishes and the gateway receives, all on
	// serve's one connection.
	for _, f := range counters {
		if v := natsConnMetric(t, admin, f, serveConnLabel); v < before[f]+2*calls {
			t.Errorf("%s = %v after %d calls, want at least %v (%v before)", f, v, calls, before[f]+2*calls, before[f])
		}
	}

	clients, ok := serverMetric(t, admin, "nylon_nats_server_connections")
	if !ok || clients < 1 {
		t.Fatalf("nylon_nats_server_connections = %v (present %v), want serve's own at least", clients, ok)
	}
	if v, ok := serverMetric(t, admin, "nylon_nats_server_slow_consumers_total"); !ok || v != 0 {
		t.Fatalf("nylon_nats_server_slow_consumers_total = %v (present %v), want 0", v, ok)
	}
	const subject = "nylon.test.flood"
	subscribeAndStopReading(t, natsURL, subject)
	if v, _ := serverMetric(t, admin, "nylon_nats_server_connections"); v != clients+1 {
		t.Errorf("nylon_nats_server_connections = %v with a client more, want %v", v, clients+1)
	}
	pub, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	payload := make([]byte, 1<<20)
	// The server buffers up to 64 MiB (max_pending) for a client, then
	// closes it as a slow consumer.
	testutil.Eventually(t, 30*time.Second, time.Millisecond, func() error {
		for range 8 {
			if err := pub.Publish(subject, payload); err != nil {
				return err
			}
		}
		if err := pub.Flush(); err != nil {
			return err
		}
		// The server may count it again as it closes it.
		if v, _ := serverMetric(t, admin, "nylon_nats_server_slow_consumers_total"); v < 1 {
			return fmt.Errorf("nylon_nats_server_slow_consumers_total = %v, want 1 or more", v)
		}
		return nil
	})
}

// subscribeAndStopReading connects a raw client to the NATS server at
// natsURL, subscribes to subject and, once the server confirmed it, reads
// nothing more.
func subscribeAndStopReading(t *testing.T, natsURL, subject string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(natsURL, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := fmt.Fprintf(c, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB %s 1\r\nPING\r\n", subject); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for PONG: %v", err)
		}
		if strings.HasPrefix(line, "PONG") {
			return
		}
	}
}

// A NATS connection that is cut shows as nylon_nats_connected 0, and once
// back as 1 with a reconnect and a disconnect counted: serve's own
// connection (--nats) and a messaging config's own alike. Without the
// embedded server there are no nylon_nats_server_* series.
func TestServeMetricsNATSReconnect(t *testing.T) {
	s, other := testutil.RunNATS(t), testutil.RunNATS(t)
	proxy := testutil.StartTCPProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	otherProxy := testutil.StartTCPProxy(t, strings.TrimPrefix(other.ClientURL(), "nats://"))
	yaml := `messaging:
  - name: partners
    servers: ["nats://` + otherProxy.Addr() + `"]
plugins:
  - {name: p, messaging: partners, function: hello, per_phase: {request_filter: {on_error: continue}}}
`
	cfgFile := writeGatewayConfig(t, yaml)
	b := startCmd(t, externalServeArgs(t, "nats://"+proxy.Addr(), "gateway", "--gateway-config", cfgFile)...)
	b.waitLine(t, readyLine)
	admin := b.waitLine(t, adminLine)
	const partners = `connection="messaging:partners"`
	for _, conn := range []string{serveConnLabel, partners} {
		if v := natsConnMetric(t, admin, "nylon_nats_connected", conn); v != 1 {
			t.Fatalf("nylon_nats_connected{%s} = %v, want 1", conn, v)
		}
	}
	if _, ok := serverMetric(t, admin, "nylon_nats_server_connections"); ok {
		t.Error("nylon_nats_server_connections without an embedded server")
	}

	proxy.Cut()
	otherProxy.Cut()
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, conn := range []string{serveConnLabel, partners} {
			if v := natsConnMetric(t, admin, "nylon_nats_connected", conn); v != 0 {
				return fmt.Errorf("nylon_nats_connected{%s} = %v after the cut, want 0", conn, v)
			}
			if v := natsConnMetric(t, admin, "nylon_nats_disconnects_total", conn); v != 1 {
				return fmt.Errorf("nylon_nats_disconnects_total{%s} = %v after the cut, want 1", conn, v)
			}
			if v := natsConnMetric(t, admin, "nylon_nats_reconnects_total", conn); v != 0 {
				return fmt.Errorf("nylon_nats_reconnects_total{%s} = %v before the restore, want 0", conn, v)
			}
		}
		return nil
	})
	proxy.Restore(t)
	otherProxy.Restore(t)
	testutil.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		for _, conn := range []string{serveConnLabel, partners} {
			if v := natsConnMetric(t, admin, "nylon_nats_connected", conn); v != 1 {
				return fmt.Errorf("nylon_nats_connected{%s} = %v after the restore, want 1", conn, v)
			}
			if v := natsConnMetric(t, admin, "nylon_nats_reconnects_total", conn); v != 1 {
				return fmt.Errorf("nylon_nats_reconnects_total{%s} = %v after the restore, want 1", conn, v)
			}
		}
		return nil
	})
	if code := b.stop(t); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, b.stderr.String())
	}
}

// The collector reports a real slow consumer on serve's connection: one
// episode, and the messages its subscription dropped.
func TestNATSCollectorCountsSlowConsumers(t *testing.T) {
	s := testutil.RunNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := natsconn.Connect(ctx, natsconn.Config{Env: "dev", URLs: []string{s.ClientURL()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	reg := natsCollectorOf(conn)
	serve := map[string]string{"connection": "serve"}
	if v := testutil.MetricSum(t, reg, "nylon_nats_slow_consumers_total", serve); v != 0 {
		t.Fatalf("nylon_nats_slow_consumers_total = %v before, want 0", v)
	}

	sub := testutil.SlowSubscriber(t, conn.NC, testutil.Connect(t, s), "nylon.test.slow", "", 10)
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		n, err := sub.Dropped()
		if err != nil {
			return err
		}
		// One in the handler, at most two pending: the rest dropped.
		if n < 7 {
			return fmt.Errorf("subscription dropped %d, want 7 or more", n)
		}
		if v := testutil.MetricSum(t, reg, "nylon_nats_slow_consumers_total", serve); v != 1 {
			return fmt.Errorf("nylon_nats_slow_consumers_total = %v, want 1", v)
		}
		if v := testutil.MetricSum(t, reg, "nylon_nats_dropped_messages_total", serve); v != float64(n) {
			return fmt.Errorf("nylon_nats_dropped_messages_total = %v, want %d", v, n)
		}
		return nil
	})
}

// nylon_nats_reconnects_total counts the times the connection came back,
// not nats.go's attempts: behind a proxy that accepts while its server is
// down each attempt dials fine and fails the handshake, and nats.go's
// Stats().Reconnects counts it.
func TestNATSCollectorCountsReconnectsNotAttempts(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.JetStream = false
	s := testutil.RunNATSWith(t, opts)
	port := s.Addr().(*net.TCPAddr).Port
	proxy := testutil.StartTCPProxy(t, s.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := natsconn.Connect(ctx, natsconn.Config{Env: "dev", URLs: []string{"nats://" + proxy.Addr()},
		ReconnectWait: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	reg := natsCollectorOf(conn)
	serve := map[string]string{"connection": "serve"}

	s.Shutdown()
	s.WaitForShutdown()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := conn.NC.Stats().Reconnects; n < 3 {
			return fmt.Errorf("nats.go counted %d reconnect attempts, waiting for 3", n)
		}
		return nil
	})
	if v := testutil.MetricSum(t, reg, "nylon_nats_connected", serve); v != 0 {
		t.Fatalf("nylon_nats_connected = %v with the server down, want 0", v)
	}
	if v := testutil.MetricSum(t, reg, "nylon_nats_reconnects_total", serve); v != 0 {
		t.Fatalf("nylon_nats_reconnects_total = %v while the connection is still down, want 0", v)
	}

	opts = testutil.NATSOptions(t)
	opts.JetStream, opts.Port = false, port
	testutil.RunNATSWith(t, opts)
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if v := testutil.MetricSum(t, reg, "nylon_nats_connected", serve); v != 1 {
			return fmt.Errorf("nylon_nats_connected = %v, want 1 once the server is back", v)
		}
		if v := testutil.MetricSum(t, reg, "nylon_nats_reconnects_total", serve); v != 1 {
			return fmt.Errorf("nylon_nats_reconnects_total = %v once the server is back, want 1", v)
		}
		return nil
	})
}

// natsCollectorOf registers serve's NATS collector of conn, serve's own
// connection (no messaging configs), on a registry of its own.
func natsCollectorOf(conn *natsconn.Conn) *prometheus.Registry {
	shared := &serveShared{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newNATSCollector(conn.Server, func() []natsSource { return shared.natsSources(conn) }))
	return reg
}
