package gateway_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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

// A messaging config's own connection outlives the servers refusing its
// credentials for a while (a rotation, a JWT update, an operator's mistake
// fixed minutes later): nats.go's default closes a connection for good at
// the second refusal in a row, and every call of the config would fail
// until a restart. It must keep trying and come back once they are
// accepted again.
func TestMessagingConnectReconnectsThroughRefusedCredentials(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.Users = []*server.User{{Username: "edge", Password: "pa55"}}
	s := testutil.RunNATSWith(t, opts)
	mc := gateway.MessagingConfig{Name: "edge", Servers: []string{s.ClientURL()},
		Auth: gateway.AuthConfig{Enabled: true, User: "edge", Password: "pa55"}}
	var refused atomic.Int32
	reconnected := make(chan struct{}, 1)
	nc, err := mc.Connect(
		nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrAuthorization) {
				refused.Add(1)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	rotated := opts.Clone()
	rotated.Users = []*server.User{{Username: "edge", Password: "rotated"}}
	testutil.ReloadNATS(t, s, rotated)
	// Closed at the 2nd refusal by nats.go's default; wait for the 5th.
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if nc.IsClosed() {
			t.Fatalf("the connection closed for good after %d refusals (last error %v)", refused.Load(), nc.LastError())
		}
		if n := refused.Load(); n < 5 {
			return fmt.Errorf("%d refusals, want 5 (status %v)", n, nc.Status())
		}
		return nil
	})

	testutil.ReloadNATS(t, s, opts)
	select {
	case <-reconnected:
	case <-time.After(5 * time.Second):
		t.Fatalf("no reconnect within 5 s of the password being accepted again (status %v, last error %v)", nc.Status(), nc.LastError())
	}
	if err := nc.Publish("probe", nil); err != nil {
		t.Fatalf("publish after the reconnect: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush after the reconnect: %v", err)
	}
}
