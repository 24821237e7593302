package natsconn

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// Events logs and counts what nats.go tells of a connection only through
// its callbacks: disconnects, reconnects and slow consumers. nats.Conn.Stats
// counts no disconnects or slow consumers, and its Reconnects counts every
// reconnect attempt whose TCP connection was accepted, handshake failed or
// not (a balancer or proxy in front of a server that is down accepts each
// one, 30 a minute at the 2 s wait), not the reconnects that brought the
// connection back. Connect installs one on every Conn (Conn.Events); a
// connection dialled elsewhere (a gateway messaging config's own) gets one
// with NewEvents and Options. Nothing here runs per message: the callbacks
// run once per disconnect, reconnect and slow-consumer episode.
type Events struct {
	log *slog.Logger

	disconnects   atomic.Uint64
	reconnects    atomic.Uint64
	slowConsumers atomic.Uint64

	mu sync.Mutex
	// slow holds every open subscription that has been a slow consumer,
	// with its drop count as last read. nats.go counts a subscription's
	// drops (Subscription.Dropped) but forgets them when it closes, so
	// closedDrops keeps what was last read of the closed ones.
	slow        map[*nats.Subscription]uint64
	closedDrops uint64
}

// NewEvents returns Events that log to log; nil discards.
func NewEvents(log *slog.Logger) *Events {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Events{log: log, slow: map[*nats.Subscription]uint64{}}
}

// Options are the nats.go callbacks that log and count: disconnect,
// reconnect, lame-duck mode and async errors (slow consumers and the
// servers' refusals of the credentials among them).
// They replace the connection's own callbacks of these kinds, so give them
// last, to nats.Connect, on one connection only.
func (e *Events) Options() []nats.Option {
	log := e.log
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			// nats.go calls this on Close and at the end of Drain too
			// (closed, no error): that one is the process letting go,
			// not a lost connection.
			if err != nil || !nc.IsClosed() {
				e.disconnects.Add(1)
			}
			if err != nil {
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// Called once the connection is back (handshake done, the
			// subscriptions sent again): what Stats().Reconnects would
			// count only if no attempt had failed after the dial.
			e.reconnects.Add(1)
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			log.Warn("nats server entering lame duck mode, will reconnect elsewhere", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{"error", err}
			if sub != nil {
				attrs = append(attrs, "subject", sub.Subject)
				if sub.Queue != "" {
					attrs = append(attrs, "queue", sub.Queue)
				}
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				e.slowConsumer(sub)
				if sub != nil {
					if msgs, bytes, perr := sub.Pending(); perr == nil {
						attrs = append(attrs, "pending_msgs", msgs, "pending_bytes", bytes)
					}
				}
				log.Warn("nats slow consumer, messages dropped", attrs...)
				return
			}
			if isAuthError(err) {
				// Once per refused attempt: the reconnect wait apart
				// (per server in the list), so no flood however long
				// the credentials stay refused.
				log.Error("nats server refused the credentials, retrying at each reconnect", attrs...)
				return
			}
			log.Error("nats async error", attrs...)
		}),
	}
}

// isAuthError reports whether err is one of the servers' refusals of the
// credentials, as nats.go hands them to the async error callback: on a
// reconnect attempt, or on a connection whose user or account JWT expired
// or was revoked.
func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired)
}

// slowConsumer counts an episode and starts following sub's drops.
func (e *Events) slowConsumer(sub *nats.Subscription) {
	e.slowConsumers.Add(1)
	if sub == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.slow[sub]; !ok {
		e.slow[sub] = 0
	}
	// Reading here too drops the closed subscriptions from the map when
	// nobody asks for Counts.
	e.readDropsLocked()
}

// readDropsLocked refreshes the drop counts of the followed subscriptions
// and stops following the closed ones, keeping their last count.
func (e *Events) readDropsLocked() uint64 {
	sum := e.closedDrops
	for sub, last := range e.slow {
		n, err := sub.Dropped()
		if err != nil {
			// Closed: what it dropped since the last read is lost.
			e.closedDrops += last
			sum += last
			delete(e.slow, sub)
			continue
		}
		if uint64(n) > last {
			last = uint64(n)
			e.slow[sub] = last
		}
		sum += last
	}
	return sum
}

// EventCounts is what Events counted since the connection was made.
type EventCounts struct {
	// Disconnects counts the times the connection was lost (the
	// disconnect callback), not counting the process's own Close or
	// Drain. Every reconnect follows one.
	Disconnects uint64
	// Reconnects counts the times the connection came back after one was
	// lost (the reconnect callback, logged "nats reconnected"). Unlike
	// nats.Conn.Stats().Reconnects it leaves out the attempts that reached
	// a server, or a proxy in front of one, but failed the handshake.
	Reconnects uint64
	// SlowConsumers counts slow-consumer episodes: nats.go reports a
	// subscription once when it starts dropping messages (over its
	// pending limits) and again only after it has delivered one since.
	SlowConsumers uint64
	// DroppedMsgs is the sum of the messages dropped by the subscriptions
	// that have been slow consumers, read from nats.go at each call (and
	// at each slow-consumer episode). It is exact for open subscriptions;
	// a subscription's drops after the last read before it closed are not
	// counted.
	DroppedMsgs uint64
}

// Counts reads the counts. It takes each followed subscription's lock
// once, so it is for a scrape, not a hot path.
func (e *Events) Counts() EventCounts {
	e.mu.Lock()
	dropped := e.readDropsLocked()
	e.mu.Unlock()
	return EventCounts{
		Disconnects:   e.disconnects.Load(),
		Reconnects:    e.reconnects.Load(),
		SlowConsumers: e.slowConsumers.Load(),
		DroppedMsgs:   dropped,
	}
}
