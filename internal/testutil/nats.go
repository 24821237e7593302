package testutil

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSOptions returns the options RunNATSWith starts from: loopback, a
// random port, JetStream stored in a fresh t.TempDir(), no logging.
func NATSOptions(t testing.TB) *server.Options {
	t.Helper()
	return &server.Options{
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		MaxPayload: 8 << 20,
	}
}

// RunNATS starts an embedded nats-server with JetStream on 127.0.0.1 and a
// random port, and shuts it down when the test ends.
func RunNATS(t testing.TB) *server.Server {
	t.Helper()
	return RunNATSWith(t, NATSOptions(t))
}

// RunNATSWith starts an embedded nats-server with opts and shuts it down
// when the test ends.
func RunNATSWith(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats server: not ready after 10s")
	}
	if opts.JetStream && !s.JetStreamEnabled() {
		s.Shutdown()
		t.Fatalf("nats server: JetStream did not start")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s, closed when the test ends.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("nats connect %s: %v", s.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on nc.
func JetStream(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

// Eventually calls fn every `every` until it returns nil, failing the test
// with fn's last error once `total` has passed. Poll, don't sleep.
func Eventually(t testing.TB, total, every time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", total, err)
		}
		time.Sleep(every)
	}
}

// SlowSubscriber subscribes to subject on nc (in queue group queue, unless
// empty) with a handler that blocks until the test ends and pending limits
// of two messages, then publishes n messages to it from pub and flushes:
// one is held by the handler, at most two wait, and nats.go drops the rest
// and reports a slow consumer, as a subscriber that falls behind does.
func SlowSubscriber(t testing.TB, nc, pub *nats.Conn, subject, queue string, n int) *nats.Subscription {
	t.Helper()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	sub, err := nc.QueueSubscribe(subject, queue, func(*nats.Msg) { <-release })
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(2, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := pub.Publish(subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}
