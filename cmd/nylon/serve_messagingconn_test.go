package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// A messaging config's own connection reconnects for as long as it is
// open, so a stop during an outage of its servers finds it reconnecting:
// serve stops at once and cleanly (exit 0), closing it, as it does its own
// connection in that state. Nothing could have been flushed on it.
func TestServeStopsCleanlyWhileMessagingServersAreDown(t *testing.T) {
	other := testutil.RunNATS(t)
	proxy := testutil.StartTCPProxy(t, strings.TrimPrefix(other.ClientURL(), "nats://"))
	yaml := `messaging:
  - name: partners
    servers: ["nats://` + proxy.Addr() + `"]
plugins:
  - {name: p, messaging: partners, function: hello, per_phase: {request_filter: {on_error: continue}}}
`
	cfgFile := writeGatewayConfig(t, yaml)
	b := startCmd(t, serveArgs(t, "--gateway-config", cfgFile, "--drain-timeout", "20s")...)
	b.waitLine(t, readyLine)
	admin := b.waitLine(t, adminLine)
	const partners = `connection="messaging:partners"`

	proxy.Cut()
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if v := natsConnMetric(t, admin, "nylon_nats_connected", partners); v != 0 {
			return fmt.Errorf("nylon_nats_connected{%s} = %v after the cut, want 0", partners, v)
		}
		return nil
	})
	start := time.Now()
	code := b.stop(t)
	took := time.Since(start)
	if code != 0 || strings.Contains(b.stderr.String(), "shutdown incomplete") {
		t.Fatalf("exit %d after %v, want 0; stderr:\n%s", code, took, b.stderr.String())
	}
	if took > 10*time.Second {
		t.Errorf("stop took %v with nothing in flight, want well under the 20s drain timeout", took)
	}
}
