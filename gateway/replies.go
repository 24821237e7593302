package gateway

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/natsready"
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
// nats.ErrConnectionClosed, or the publish's; and one wrapping
// natsready.ErrNotSent when the connection was down for the whole timeout.
//
// While the connection is down (nats.go reconnecting) the request is not
// published into nats.go's reconnect buffer, which would send it once
// reconnected, long after the caller answered 504 and wrote the dead letter:
// the call waits for the connection instead, within the same timeout
// (natsready.Await).
func (x *replyMux) request(ctx context.Context, subject string, hdr nats.Header, data []byte, timeout time.Duration) (*nats.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !x.nc.IsConnected() {
		wait, cancel := context.WithTimeout(ctx, timeout)
		err := natsready.Await(wait, x.nc)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err() // the caller's context, not the timeout
			}
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
	t := x.timer(timeout)
	defer x.timers.Put(t)
	defer t.Stop()
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
	if x.cur == nil || closed(x.cur.done) {
		s, err := x.subscribe()
		if err != nil {
			x.chans.Put(ch)
			return nil, 0, nil, err
		}
		x.cur = s
	}
	x.next++
	x.calls[x.next] = ch
	return x.cur, x.next, ch, nil
}

// subscribe starts a subscription on a fresh inbox (not nats.go's own
// response inbox, whose mux would see these replies too) and a watcher that
// ends the subscription's calls when the connection closes, as nats.go
// does for its requests. x.mu is held.
func (x *replyMux) subscribe() (*replySub, error) {
	s := &replySub{prefix: x.nc.NewInbox() + ".", done: make(chan struct{})}
	s.status = x.nc.StatusChanged(nats.CLOSED)
	sub, err := x.nc.Subscribe(s.prefix+"*", func(m *nats.Msg) { x.deliver(s, m) })
	if err != nil {
		x.nc.RemoveStatusListener(s.status)
		return nil, err
	}
	s.sub = sub
	go func() {
		// Ends on the CLOSED event, or when close removes the listener.
		if _, ok := <-s.status; ok {
			s.end()
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
