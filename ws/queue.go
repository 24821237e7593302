package ws

import "sync"

// fifo is a first-in first-out queue of T that takes memory as items come
// and gives most of it back once empty: an idle connection holds none of
// its queues' storage, where a channel of capacity SendQueue preallocates
// all of it (16 KiB of send queue per connection by default). The caller
// bounds its length and guards it.
type fifo[T any] struct {
	buf  []T // ring storage; nil until the first push
	head int // index of the oldest item
	n    int // items queued
}

const (
	// fifoMinCap is the storage a fifo starts with.
	fifoMinCap = 4
	// fifoKeepCap is the most storage a fifo keeps when it empties:
	// connections that get a message now and then reuse it (no allocation
	// per message), while a burst's larger storage is let go.
	fifoKeepCap = 8
)

func (q *fifo[T]) len() int { return q.n }

// push appends v, growing the storage when full.
func (q *fifo[T]) push(v T) {
	if q.n == len(q.buf) {
		grown := make([]T, max(fifoMinCap, 2*len(q.buf)))
		// Unroll the ring into the new storage: oldest item first.
		k := copy(grown, q.buf[q.head:])
		copy(grown[k:], q.buf[:q.head])
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = v
	q.n++
}

// pop removes and returns the oldest item; the fifo must not be empty.
func (q *fifo[T]) pop() T {
	v := q.buf[q.head]
	var zero T
	q.buf[q.head] = zero // the queue no longer holds on to its data
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > fifoKeepCap {
			q.buf = nil
		}
	}
	return v
}

// eventQueue is a connection's received messages waiting for their events:
// at most max, put by the reading goroutine and taken by eventLoop, one
// of each (the 1-buffered wake-ups rely on it). Like the send queue it
// holds no storage while empty.
type eventQueue struct {
	max    int
	mu     sync.Mutex
	q      fifo[inEvent] // guarded by mu
	closed bool          // guarded by mu; no more puts, takes drain q
	// queued wakes the taker when an event is put or the queue closed;
	// taken wakes the putter when an event is taken.
	queued chan struct{}
	taken  chan struct{}
}

func (q *eventQueue) init(max int) {
	q.max = max
	q.queued = make(chan struct{}, 1)
	q.taken = make(chan struct{}, 1)
}

// put queues ev, waiting while the queue is full. It gives up and reports
// false when stop is closed first (a nil stop: never).
func (q *eventQueue) put(ev inEvent, stop <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.q.len() < q.max {
			q.q.push(ev)
			q.mu.Unlock()
			wake(q.queued)
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.taken:
		case <-stop:
			return false
		}
	}
}

// take returns the oldest event, waiting for one; false once the queue is
// closed and drained.
func (q *eventQueue) take() (inEvent, bool) {
	for {
		q.mu.Lock()
		if q.q.len() > 0 {
			ev := q.q.pop()
			q.mu.Unlock()
			wake(q.taken)
			return ev, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return inEvent{}, false
		}
		<-q.queued
	}
}

// close ends the queue after the events already in it; put must not be
// called after.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	wake(q.queued)
}

// wake signals a 1-buffered channel without blocking: a wake-up already
// pending covers this one.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
