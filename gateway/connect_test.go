package gateway_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
)

// A messaging config's own connection outlives an outage longer than
// nats.go's default 60 reconnect attempts: it must come back, not close for
// good and fail the config's every call until a restart. The attempts are
// made quick (10 ms apart, no jitter) so that 60 of them fit in the outage.
func TestMessagingConnectReconnectsForever(t *testing.T) {
	s := testutil.RunNATS(t)
	proxy := testutil.StartTCPProxy(t, s.Addr().String())
	mc := gateway.MessagingConfig{Name: "edge", Servers: []string{"nats://" + proxy.Addr()}}
	reconnected := make(chan struct{}, 1)
	nc, err := mc.Connect(
		nats.ReconnectWait(10*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if got, want := nc.Opts.Name, "nylon gateway messaging:edge"; got != want {
		t.Errorf("connection name %q, want %q", got, want)
	}

	proxy.Cut()
	// Past the 60th refused attempt (~0.6 s at 10 ms each, plus dialling).
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if nc.IsClosed() {
			t.Fatal("the connection closed for good during the outage (nats.go's default of 60 reconnect attempts)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	proxy.Restore(t)
	select {
	case <-reconnected:
	case <-time.After(5 * time.Second):
		t.Fatalf("no reconnect within 5 s of the server coming back (status %v)", nc.Status())
	}
	if err := nc.Publish("probe", nil); err != nil {
		t.Fatalf("publish after the reconnect: %v", err)
	}
}
