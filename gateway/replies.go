package gateway

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// replyMux makes the phase calls' NATS requests on one connection: one
// wildcard subscription on a private inbox receives every reply, and a
// token per call in the reply subject finds the waiting caller. It is what
// nats.go's shared response mux does, minus the per-call context:
// RequestMsgWithContext needs a context.WithTimeout per attempt, a timer
// context registered as a child of the HTTP request's context, which cost
// more CPU and allocations than the rest of the call's NATS bookkeeping. A
// call here waits on its reply channel, the request's context and a pooled
// timer, and both reply channels and timers are reused.
type replyMux struct {
	nc *nats.Conn

	mu    sync.Mutex
	cur   *replySub // nil before the first call and after close
	next  uint64
	calls map[uint64]chan *nats.Msg
	// up is closed, and cleared, at the next reconnect; the calls
	// waiting for the connection (awaitConnected) wait on it. nil while
	// none waits.
	up chan struct{}

	chans  sync.Pool // chan *nats.Msg with a buffer of one
	timers sync.Pool // *time.Timer, stopped
}

// replySub is one subscription of a replyMux, with the signal that ends
// the calls waiting on it when the connection closes.
type replySub struct {
	prefix string // "<inbox>.", then the call's token
	sub    *nats.Subscription
	status chan nats.Status // CLOSED events of the connection
	done   chan struct{}    // closed when the connection closes or the mux does
	once   sync.Once
}

func (s *replySub) end() { s.once.Do(func() { close(s.done) }) }

func newReplyMux(nc *nats.Conn) *replyMux {
	return &replyMux{nc: nc, calls: map[uint64]chan *nats.Msg{}}
}

// request publishes data to subject with hdr and waits, at most timeout,
// for the reply. Errors are nats.go's, as RequestMsgWithContext returns
// them: nats.ErrNoResponders, nats.ErrTimeout, ctx's error,
// nats.ErrConnectionClosed, or the publish's; and a *notSentError when the
// connection was down for the whole timeout.
//
// While the connection is down (nats.go reconnecting) the request is not
// published: nats.go would keep it in its reconnect buffer and send it
// once reconnected, however long after the caller stopped waiting, and
// the node would run it then, a request the client had been answered 504
// for and that had been dead-lettered (so a replay ran it twice), and a
// whole outage's worth of such requests at once. The call waits for the
// connection instead, within the same timeout, and publishes once it is
// back.
func (x *replyMux) request(ctx context.Context, subject string, hdr nats.Header, data []byte, timeout time.Duration) (*nats.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := x.timer(timeout)
	defer x.timers.Put(t)
	defer t.Stop()
	if !x.nc.IsConnected() {
		if err := x.awaitConnected(ctx, t.C); err != nil {
			return nil, err
		}
	}
	s, token, ch, err := x.register()
	if err != nil {
		return nil, err
	}
	// The reply subject is the one string a call allocates.
	var b [64]byte
	reply := string(strconv.AppendUint(append(b[:0], s.prefix...), token, 36))
	if err := x.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Header: hdr, Data: data}); err != nil {
		x.forget(token, ch)
		return nil, err
	}
	select {
	case m := <-ch:
		// deliver removed the call before sending: nothing else can
		// send on ch.
		x.chans.Put(ch)
		// The server answers a request nobody subscribes to with a
		// "503" status message (nats.go's noResponders check).
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		return m, nil
	case <-ctx.Done():
		x.forget(token, ch)
		return nil, ctx.Err()
	case <-t.C:
		x.forget(token, ch)
		return nil, nats.ErrTimeout
	case <-s.done:
		x.forget(token, ch)
		return nil, nats.ErrConnectionClosed
	}
}

// register adds a call, subscribing first if needed.
func (x *replyMux) register() (*replySub, uint64, chan *nats.Msg, error) {
	ch, _ := x.chans.Get().(chan *nats.Msg)
	if ch == nil {
		ch = make(chan *nats.Msg, 1)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	s, err := x.current()
	if err != nil {
		x.chans.Put(ch)
		return nil, 0, nil, err
	}
	x.next++
	x.calls[x.next] = ch
	return s, x.next, ch, nil
}

// current returns the subscription, subscribing first if needed. x.mu is
// held.
func (x *replyMux) current() (*replySub, error) {
	if x.cur == nil || closed(x.cur.done) {
		s, err := x.subscribe()
		if err != nil {
			return nil, err
		}
		x.cur = s
	}
	return x.cur, nil
}

// notSentError is a call whose timeout passed while the connection was
// down: the request was never published. It wraps nats.ErrTimeout.
type notSentError struct{ status nats.Status }

func (e *notSentError) Error() string {
	return "nats connection " + e.status.String() + ": request not sent"
}

func (e *notSentError) Unwrap() error { return nats.ErrTimeout }

// awaitConnected waits until the connection is up, expired fires (a
// *notSentError), ctx ends, or the connection closes. It is only called
// while the connection is down, so the requests of an outage are what pay
// for the listener, not every call.
func (x *replyMux) awaitConnected(ctx context.Context, expired <-chan time.Time) error {
	for {
		x.mu.Lock()
		s, err := x.current() // its watcher wakes the waiters on reconnect
		var up chan struct{}
		if err == nil {
			if x.up == nil {
				x.up = make(chan struct{})
			}
			up = x.up
		}
		x.mu.Unlock()
		if err != nil {
			return err
		}
		// Read after taking up: a reconnect from now on closes it.
		st := x.nc.Status()
		switch st {
		case nats.RECONNECTING, nats.DISCONNECTED, nats.CONNECTING:
		case nats.CLOSED:
			return nats.ErrConnectionClosed
		default:
			// Connected, or draining: publishing says what it can.
			return nil
		}
		select {
		case <-up:
		case <-s.done:
			return nats.ErrConnectionClosed
		case <-ctx.Done():
			return ctx.Err()
		case <-expired:
			return &notSentError{status: st}
		}
	}
}

// wake releases the calls waiting for the connection; they look at its
// status again.
func (x *replyMux) wake() {
	x.mu.Lock()
	if x.up != nil {
		close(x.up)
		x.up = nil
	}
	x.mu.Unlock()
}

// subscribe starts a subscription on a fresh inbox (not nats.go's own
// response inbox, whose mux would see these replies too) and a watcher that
// ends the subscription's calls when the connection closes, as nats.go
// does for its requests. x.mu is held.
func (x *replyMux) subscribe() (*replySub, error) {
	s := &replySub{prefix: x.nc.NewInbox() + ".", done: make(chan struct{})}
	s.status = x.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	sub, err := x.nc.Subscribe(s.prefix+"*", func(m *nats.Msg) { x.deliver(s, m) })
	if err != nil {
		x.nc.RemoveStatusListener(s.status)
		return nil, err
	}
	s.sub = sub
	go func() {
		// Ends on the CLOSED event, or when close removes the listener.
		// A reconnect (CONNECTED) releases the calls waiting for it.
		for st := range s.status {
			x.wake()
			if st == nats.CLOSED {
				s.end()
				return
			}
		}
	}()
	if x.nc.IsClosed() { // closed before the listener was registered
		s.end()
	}
	return s, nil
}

// deliver hands a reply to its call; replies to calls that stopped waiting
// (late replies of an attempt that timed out) are dropped.
func (x *replyMux) deliver(s *replySub, m *nats.Msg) {
	if len(m.Subject) <= len(s.prefix) {
		return
	}
	token, err := strconv.ParseUint(m.Subject[len(s.prefix):], 36, 64)
	if err != nil {
		return
	}
	x.mu.Lock()
	ch := x.calls[token]
	delete(x.calls, token)
	x.mu.Unlock()
	if ch != nil {
		ch <- m // buffered, and this is its only send: never blocks
	}
}

// forget removes a call that stopped waiting. Its channel is reused only if
// the call was still registered: otherwise deliver has taken it and a
// reply may be on its way into it.
func (x *replyMux) forget(token uint64, ch chan *nats.Msg) {
	x.mu.Lock()
	_, waiting := x.calls[token]
	delete(x.calls, token)
	x.mu.Unlock()
	if waiting {
		x.chans.Put(ch)
	}
}

// timer returns a pooled timer firing after d. Since Go 1.23 a stopped or
// reset timer delivers no stale tick, so pooled timers need no draining.
func (x *replyMux) timer(d time.Duration) *time.Timer {
	if t, ok := x.timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

// close unsubscribes and ends the calls still waiting; a later call
// subscribes again.
func (x *replyMux) close() {
	x.mu.Lock()
	s := x.cur
	x.cur = nil
	x.mu.Unlock()
	if s == nil {
		return
	}
	_ = s.sub.Unsubscribe() // fails only when the connection is closed: nothing left to stop
	x.nc.RemoveStatusListener(s.status)
	s.end()
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
