package platform

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"time"

	"github.com/nylon-functions/nylon/protocol"
)

// dedupKey identifies one request of a function: callers retry a phase with
// the same request id, and every phase of one HTTP request shares that id.
// The session is part of it, as in the wire protocol's contract (callers
// deduplicate by session, phase and request id): a request of another
// session that happens to carry the same id is another request, and must
// neither get nor wait for the first one's reply, which echoes the first
// session's id.
type dedupKey struct {
	phase   protocol.Phase
	session uint32
	id      protocol.RequestID
}

// hash folds the key into the cache's map key. An 8-byte map key keeps the
// lookups of a large cache cheap; the entry keeps the full key, and two
// keys with one hash simply bypass the cache (see dedupBypass).
func (k dedupKey) hash() uint64 {
	hi := binary.BigEndian.Uint64(k.id[:8])
	lo := binary.BigEndian.Uint64(k.id[8:])
	return lo ^ bits.RotateLeft64(hi, 31)*0x9e3779b97f4a7c15 ^ uint64(k.phase) ^ uint64(k.session)<<32
}

// waiter is a duplicate delivery that arrived while the first was running:
// it is answered with the first one's reply.
type waiter struct {
	reply       string
	traceparent string
	start       time.Time
	expires     time.Time // when its caller stops waiting; zero: never said
}

// dedupEntry is a request that is running (done false, waiters queued) or
// whose reply is remembered (done true, linked in age order).
type dedupEntry struct {
	key     dedupKey
	done    bool
	reply   []byte // the encoded PluginResponse; never modified once stored
	errText string // the reply's error text, for the duplicates' accounting
	waiters []waiter
	at      time.Time
	// expires is the latest time a caller of a running entry waits for
	// its reply, the leader's or a waiter's; zero when one of them did not
	// say, so someone may wait for ever.
	expires time.Time

	prev, next *dedupEntry
}

// dedupOutcome says what begin decided.
type dedupOutcome uint8

const (
	dedupLead   dedupOutcome = iota // first delivery: run the handler, then finish
	dedupHit                        // remembered: answer with the returned reply
	dedupJoined                     // running: the caller's waiter is answered by finish
	dedupBypass                     // another key has this hash: run without deduplication
	dedupFull                       // running, with maxWaiters duplicates waiting: refuse (503)
)

// maxWaiters bounds the duplicates waiting for one running request. A
// caller's retries and the copies a queue group change delivers are a
// handful; without a bound, one request id published in a loop while its
// first delivery waits in the queue or runs (up to the queue's wait plus the
// function's timeout) queued a waiter per message, tens of MiB a second,
// and the worker then published a reply to each. Waiters whose caller has
// stopped waiting (Nylon-Timeout-Ms) make room first.
const maxWaiters = 64

// dedupCache remembers replies by request id for a window, with bounded
// memory, and makes duplicates of a running request wait for its reply
// (singleflight). One per function, shared by its versions, so a retry
// after a hot reload is still recognised.
//
// Remembered replies sit in a list in the order they finished; since the
// window is the same for all, that is also expiry order, so eviction (by
// age, entry count or bytes) always takes from the front. Running requests
// are not in the list: their number is bounded by the function's workers
// and queue.
type dedupCache struct {
	window     time.Duration
	maxEntries int
	maxBytes   int64

	mu         sync.Mutex
	m          map[uint64]*dedupEntry
	head, tail *dedupEntry
	entries    int
	bytes      int64
	free       *dedupEntry // forgotten entries kept for reuse, linked by next
	nfree      int
}

// maxFree bounds the entries kept for reuse: enough to absorb a burst of
// evictions without holding much memory.
const maxFree = 1024

// dedupOverhead approximates the memory of an entry besides its reply.
const dedupOverhead = 160

func newDedupCache(window time.Duration, maxEntries int, maxBytes int64) *dedupCache {
	return &dedupCache{
		window:     window,
		maxEntries: maxEntries,
		maxBytes:   maxBytes,
		m:          make(map[uint64]*dedupEntry),
	}
}

// begin looks key up. For dedupLead it returns the new running entry, to
// pass to finish; for dedupHit the remembered reply and its error text; for
// dedupJoined, w is queued and will be returned by finish, unless it has no
// reply subject (nobody waits for its answer); for dedupFull, w was not
// queued.
func (c *dedupCache) begin(key dedupKey, w waiter) (out dedupOutcome, lead *dedupEntry, reply []byte, errText string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(w.start)
	h := key.hash()
	if e, ok := c.m[h]; ok {
		switch {
		case e.key != key:
			return dedupBypass, nil, nil, ""
		case e.done:
			return dedupHit, nil, e.reply, e.errText
		case w.reply == "":
			return dedupJoined, nil, nil, ""
		}
		if len(e.waiters) >= maxWaiters {
			e.waiters = dropGone(e.waiters, w.start)
			if len(e.waiters) >= maxWaiters {
				return dedupFull, nil, nil, ""
			}
		}
		e.waiters = append(e.waiters, w)
		e.expires = later(e.expires, w.expires)
		return dedupJoined, nil, nil, ""
	}
	e := c.free
	if e != nil {
		c.free, e.next = e.next, nil
		c.nfree--
		e.key = key
	} else {
		e = &dedupEntry{key: key}
	}
	e.expires = w.expires
	c.m[h] = e
	return dedupLead, e, nil, ""
}

// finish ends the running entry e that begin returned and returns the
// duplicates that waited for it. With remember, reply is kept for the
// window; otherwise (transport errors) the key is forgotten so a retry runs
// again. reply is retained: the caller must not modify it afterwards.
//
// A running entry is never evicted or recycled (only finish removes it),
// so the leader may hold e without a lookup.
func (c *dedupCache) finish(e *dedupEntry, reply []byte, errText string, remember bool) []waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.done {
		return nil
	}
	ws := e.waiters
	e.waiters = nil
	if !remember || c.window <= 0 {
		delete(c.m, e.key.hash())
		c.recycle(e)
		return ws
	}
	now := time.Now() // under the lock, so the list stays in time order
	e.done, e.reply, e.errText, e.at = true, reply, errText, now
	c.pushBack(e)
	c.entries++
	c.bytes += int64(len(reply)) + dedupOverhead
	c.expire(now)
	return ws
}

// expired reports whether every caller of the running entry e has stopped
// waiting by now.
func (c *dedupCache) expired(e *dedupEntry, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !e.expires.IsZero() && now.After(e.expires)
}

// dropGone removes the waiters whose caller has stopped waiting by now.
func dropGone(ws []waiter, now time.Time) []waiter {
	out := ws[:0]
	for _, w := range ws {
		if w.expires.IsZero() || !now.After(w.expires) {
			out = append(out, w)
		}
	}
	clear(ws[len(out):])
	return out
}

// later is the later of a and b, where zero (no deadline) is the latest.
func later(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	if b.After(a) {
		return b
	}
	return a
}

// len reports the remembered and running entries.
func (c *dedupCache) len() (remembered, running int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries, len(c.m) - c.entries
}

// expire drops remembered replies older than the window or beyond the
// bounds, oldest first. Lock held.
func (c *dedupCache) expire(now time.Time) {
	cutoff := now.Add(-c.window)
	for e := c.head; e != nil; e = c.head {
		if e.at.After(cutoff) && c.entries <= c.maxEntries && c.bytes <= c.maxBytes {
			return
		}
		c.unlink(e)
		delete(c.m, e.key.hash())
		c.entries--
		c.bytes -= int64(len(e.reply)) + dedupOverhead
		c.recycle(e)
	}
}

// recycle keeps a forgotten entry for reuse. Lock held.
func (c *dedupCache) recycle(e *dedupEntry) {
	if c.nfree >= maxFree {
		return
	}
	*e = dedupEntry{next: c.free}
	c.free = e
	c.nfree++
}

func (c *dedupCache) pushBack(e *dedupEntry) {
	e.prev, e.next = c.tail, nil
	if c.tail != nil {
		c.tail.next = e
	} else {
		c.head = e
	}
	c.tail = e
}

func (c *dedupCache) unlink(e *dedupEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
