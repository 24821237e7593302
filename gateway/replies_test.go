package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nylon-functions/nylon/internal/testutil"
)

func TestReplyMuxRoutesEachReplyToItsCall(t *testing.T) {
	_, x := newMuxWithResponder(t, "echo", func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Data: m.Data, Header: nats.Header{"Got-Env": m.Header["Nylon-Env"]}})
	})

	// Many calls at once, many times: channels and timers are reused, and
	// a mixed-up reply would show as someone else's data.
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				want := fmt.Appendf(nil, "call %d/%d", g, i)
				m, err := x.request(t.Context(), "echo", nats.Header{"Nylon-Env": {"dev"}}, want, 5*time.Second)
				if err != nil {
					t.Errorf("call %s: %v", want, err)
					return
				}
				if !bytes.Equal(m.Data, want) || m.Header.Get("Got-Env") != "dev" {
					t.Errorf("call %s: got reply %q with headers %v", want, m.Data, m.Header)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := pendingCalls(x); n != 0 {
		t.Errorf("%d calls still registered after all replied", n)
	}
}

func TestReplyMuxDropsLateReplies(t *testing.T) {
	release := make(chan struct{})
	_, x := newMuxWithResponder(t, "slow", func(m *nats.Msg) {
		if string(m.Data) == "first" {
			<-release // answer only after the caller gave up
		}
		_ = m.Respond(m.Data)
	})

	start := time.Now()
	_, err := x.request(t.Context(), "slow", nil, []byte("first"), 50*time.Millisecond)
	if !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("first call: error %v, want nats.ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout of 50ms took %v", d)
	}
	close(release) // the late reply to "first" is sent now
	for i := range 20 {
		m, err := x.request(t.Context(), "slow", nil, fmt.Appendf(nil, "next %d", i), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("next %d", i); string(m.Data) != want {
			t.Fatalf("call %q got reply %q", want, m.Data)
		}
	}
}

func TestReplyMuxFailures(t *testing.T) {
	_, x := newMuxWithResponder(t, "silent", func(*nats.Msg) {})

	t.Run("no responders", func(t *testing.T) {
		if _, err := x.request(t.Context(), "nobody.here", nil, []byte("x"), 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("error %v, want nats.ErrNoResponders", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := x.request(ctx, "silent", nil, []byte("x"), time.Minute); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if _, err := x.request(ctx, "silent", nil, []byte("x"), time.Minute); !errors.Is(err, context.Canceled) {
			t.Fatalf("done context: error %v, want context.Canceled", err)
		}
	})
	t.Run("closed and reopened", func(t *testing.T) {
		x.close()
		x.close() // twice is fine
		if _, err := x.request(t.Context(), "nobody.here", nil, []byte("x"), 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("after close: error %v, want nats.ErrNoResponders (a new subscription)", err)
		}
	})
	if n := pendingCalls(x); n != 0 {
		t.Errorf("%d calls still registered after all ended", n)
	}
}

func TestReplyMuxEndsCallsWhenTheConnectionCloses(t *testing.T) {
	nc, x := newMuxWithResponder(t, "silent", func(*nats.Msg) {})

	errc := make(chan error, 1)
	go func() {
		_, err := x.request(t.Context(), "silent", nil, []byte("x"), time.Minute)
		errc <- err
	}()
	testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if pendingCalls(x) == 0 {
			return errors.New("call not registered yet")
		}
		return nil
	})
	nc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, nats.ErrConnectionClosed) {
			t.Fatalf("error %v, want nats.ErrConnectionClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call kept waiting after its connection closed")
	}
	if _, err := x.request(t.Context(), "silent", nil, []byte("x"), time.Minute); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("call on a closed connection: error %v, want nats.ErrConnectionClosed", err)
	}
}

func pendingCalls(x *replyMux) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.calls)
}

// newMuxWithResponder starts NATS, subscribes handle to subject on a
// connection of its own, and returns the caller's connection and a reply mux
// on it, closed when the test ends.
func newMuxWithResponder(t *testing.T, subject string, handle nats.MsgHandler) (*nats.Conn, *replyMux) {
	t.Helper()
	s := testutil.RunNATS(t)
	nc := testutil.Connect(t, s)
	responder := testutil.Connect(t, s)
	if _, err := responder.Subscribe(subject, handle); err != nil {
		t.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		t.Fatal(err)
	}
	x := newReplyMux(nc)
	t.Cleanup(x.close)
	return nc, x
}
