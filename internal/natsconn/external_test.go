package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
)

func externalConfig(urls ...string) Config {
	return Config{Env: "dev", Name: "natsconn-test", URLs: urls, ReconnectWait: 50 * time.Millisecond}
}

func TestExternalConnect(t *testing.T) {
	s := testutil.RunNATS(t)
	c := mustConnect(t, externalConfig(s.ClientURL()))
	if c.Server != nil || c.Embedded() {
		t.Fatal("Server set for an external connection")
	}
	if got := c.ClientURL(); got != s.ClientURL() {
		t.Errorf("ClientURL = %q, want %q", got, s.ClientURL())
	}
	roundTrip(t, c.NC, testutil.Connect(t, s))
	if _, err := c.JetStream().AccountInfo(context.Background()); err != nil {
		t.Fatalf("JetStream account info: %v", err)
	}
	if h := c.Health(); !h.Connected || h.Embedded || h.URL != s.ClientURL() {
		t.Errorf("Health = %+v", h)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !s.Running() {
		t.Error("Close of an external connection stopped the server")
	}
}

func TestExternalUnreachable(t *testing.T) {
	_, err := Connect(context.Background(), externalConfig("nats://127.0.0.1:1"), nil)
	if err == nil || !errors.Is(err, nats.ErrNoServers) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Connect(unreachable) = %v, want ErrNoServers naming the url", err)
	}
}

func TestExternalTokenAuth(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.Authorization = "s3cret"
	s := testutil.RunNATSWith(t, opts)

	cfg := externalConfig(s.ClientURL())
	cfg.Token = "s3cret"
	c := mustConnect(t, cfg)
	roundTrip(t, c.NC, c.NC)

	cfg.Token = "wrong"
	_, err := Connect(context.Background(), cfg, nil)
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("Connect(wrong token) = %v, want nats.ErrAuthorization", err)
	}
	if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("error = %q, want a clear message without the token", err)
	}

	cfg.Token = ""
	if _, err := Connect(context.Background(), cfg, nil); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("Connect(no token) = %v, want nats.ErrAuthorization", err)
	}
}

func TestExternalUserPassword(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.Users = []*server.User{{Username: "nylon", Password: "pa55"}}
	s := testutil.RunNATSWith(t, opts)

	cfg := externalConfig(s.ClientURL())
	cfg.User, cfg.Password = "nylon", "pa55"
	c := mustConnect(t, cfg)
	roundTrip(t, c.NC, c.NC)

	cfg.Password = "nope"
	if _, err := Connect(context.Background(), cfg, nil); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("Connect(wrong password) = %v, want nats.ErrAuthorization", err)
	}
}

func TestExternalNKeySeed(t *testing.T) {
	pub, seedFile := testutil.NKeyUser(t)
	opts := testutil.NATSOptions(t)
	opts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	s := testutil.RunNATSWith(t, opts)

	cfg := externalConfig(s.ClientURL())
	cfg.NKeySeedFile = seedFile
	c := mustConnect(t, cfg)
	roundTrip(t, c.NC, c.NC)

	// Another user's seed is refused.
	_, otherFile := testutil.NKeyUser(t)
	cfg.NKeySeedFile = otherFile
	if _, err := Connect(context.Background(), cfg, nil); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("Connect(other seed) = %v, want nats.ErrAuthorization", err)
	}

	cfg.NKeySeedFile = filepath.Join(t.TempDir(), "missing.nk")
	_, err := Connect(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "missing.nk") {
		t.Fatalf("Connect(missing seed file) = %v, want an error naming the file", err)
	}
}

func TestExternalTLS(t *testing.T) {
	pki := testutil.NewPKI(t)
	opts := testutil.NATSOptions(t)
	opts.TLSConfig = pki.ServerTLS
	opts.TLSTimeout = 2
	s := testutil.RunNATSWith(t, opts)
	url := s.ClientURL()
	if !strings.HasPrefix(url, "tls://") {
		t.Fatalf("server url %q, want tls://", url)
	}

	cfg := externalConfig(url)
	cfg.TLS.CAFile = pki.CAFile
	c := mustConnect(t, cfg)
	roundTrip(t, c.NC, c.NC)
	if !c.NC.TLSRequired() {
		t.Error("connection is not TLS")
	}

	// Without the CA the server's certificate is not trusted.
	cfg.TLS.CAFile = ""
	_, err := Connect(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Connect(no CA) = %v, want a certificate verification error", err)
	}
}

// TestProductionRule connects the way a non-dev node must: TLS plus an nkey,
// and checks that dropping either is refused before dialing.
func TestProductionRule(t *testing.T) {
	sn := testutil.RunSecureNATS(t)
	cfg := externalConfig(sn.URL)
	cfg.Env = "prod"
	cfg.TLS.CAFile = sn.CAFile
	cfg.NKeySeedFile = sn.SeedFile
	c := mustConnect(t, cfg)
	roundTrip(t, c.NC, c.NC)

	noCreds := cfg
	noCreds.NKeySeedFile = ""
	noCreds.Token = "t"
	if _, err := Connect(context.Background(), noCreds, nil); !errors.Is(err, ErrInsecure) {
		t.Errorf("Connect(prod, token only) = %v, want ErrInsecure", err)
	}
	plain := externalConfig(strings.Replace(sn.URL, "tls://", "nats://", 1))
	plain.Env = "prod"
	plain.NKeySeedFile = sn.SeedFile
	if _, err := Connect(context.Background(), plain, nil); !errors.Is(err, ErrInsecure) {
		t.Errorf("Connect(prod, plaintext) = %v, want ErrInsecure", err)
	}
	embedded := Config{Env: "prod", Embedded: Embedded{Listen: "0.0.0.0:-1", DataDir: t.TempDir()}}
	if _, err := Connect(context.Background(), embedded, nil); !errors.Is(err, ErrInsecure) {
		t.Errorf("Connect(prod, embedded on all interfaces) = %v, want ErrInsecure", err)
	}
}

func TestExternalLogsDisconnectAndReconnect(t *testing.T) {
	opts := testutil.NATSOptions(t)
	s := testutil.RunNATSWith(t, opts)
	port := s.Addr().(*net.TCPAddr).Port
	logger, logs := newTestLogger(slog.LevelInfo)
	c, err := Connect(context.Background(), externalConfig(s.ClientURL()), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()

	s.Shutdown()
	s.WaitForShutdown()
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "nats disconnected") {
			return errors.New("no disconnect logged")
		}
		return nil
	})

	// The same port again: the client comes back by itself and says so.
	restart := testutil.NATSOptions(t)
	restart.Port = port
	testutil.RunNATSWith(t, restart)
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "nats reconnected") || !c.Health().Connected {
			return errors.New("not reconnected")
		}
		return nil
	})
	if h := c.Health(); h.Reconnects == 0 {
		t.Errorf("Health.Reconnects = 0 after a reconnect")
	}
}
