package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/nylon-functions/nylon/internal/testutil"
)

const refusedLog = `level=ERROR msg="nats server refused the credentials, retrying at each reconnect" error="nats: authorization violation"`

// The servers refusing the connection's credentials for a while (a
// rotation, a JWT update, an operator's mistake fixed minutes later) must
// not close it for good, as nats.go does at the second refusal in a row by
// default: it keeps trying, logs each refusal once per attempt, and comes
// back once the credentials are accepted again.
func TestExternalReconnectsThroughRefusedCredentials(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.Users = []*server.User{{Username: "nylon", Password: "pa55"}}
	s := testutil.RunNATSWith(t, opts)
	logger, logs := newTestLogger(slog.LevelInfo)
	cfg := externalConfig(s.ClientURL())
	cfg.User, cfg.Password = "nylon", "pa55"
	cfg.ReconnectJitter = time.Millisecond // attempts ~50 ms apart
	c, err := Connect(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()

	// The server now wants another password: it drops the connection and
	// refuses each reconnect with "Authorization Violation".
	rotated := opts.Clone()
	rotated.Users = []*server.User{{Username: "nylon", Password: "rotated"}}
	start := time.Now()
	testutil.ReloadNATS(t, s, rotated)

	// nats.go's default closes the connection at the 2nd refusal; wait
	// for the 5th while it stays open.
	const want = 5
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if c.NC.IsClosed() {
			t.Fatalf("connection closed for good after %d refusals (last error %v); logs:\n%s",
				strings.Count(logs.String(), refusedLog), c.NC.LastError(), logs)
		}
		if n := strings.Count(logs.String(), refusedLog); n < want {
			return fmt.Errorf("%d refusals logged, want %d; logs:\n%s", n, want, logs)
		}
		return nil
	})
	// One line per attempt, the reconnect wait apart: not a flood.
	if n, most := strings.Count(logs.String(), refusedLog), int(time.Since(start)/cfg.ReconnectWait)+2; n > most {
		t.Errorf("%d refusals logged in %v, want at most %d (one per %v reconnect wait)", n, time.Since(start), most, cfg.ReconnectWait)
	}
	if h := c.Health(); h.Connected || h.Status != "RECONNECTING" {
		t.Errorf("Health while refused = %+v, want RECONNECTING", h)
	}

	testutil.ReloadNATS(t, s, opts)
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !c.Health().Connected || !strings.Contains(logs.String(), "nats reconnected") {
			return errors.New("not reconnected once the password is accepted again")
		}
		return nil
	})
	roundTrip(t, c.NC, c.NC)
}
