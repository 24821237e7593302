package platform

import (
	"fmt"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/protocol"
)

func key(i int) dedupKey {
	var id protocol.RequestID
	copy(id[:], fmt.Sprintf("%016d", i))
	return dedupKey{phase: protocol.PhaseRequestFilter, id: id}
}

// lead begins key, which must be new, and returns its running entry.
func lead(t *testing.T, c *dedupCache, k dedupKey) *dedupEntry {
	t.Helper()
	out, e, _, _ := c.begin(k, waiter{start: time.Now()})
	if out != dedupLead || e == nil {
		t.Fatalf("begin: %v, want lead", out)
	}
	return e
}

func TestDedupRemembersWithinWindow(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	e := lead(t, c, key(1))
	if ws := c.finish(e, []byte("reply"), "", true); len(ws) != 0 {
		t.Fatalf("waiters = %v", ws)
	}
	out, _, reply, _ := c.begin(key(1), waiter{start: time.Now()})
	if out != dedupHit || string(reply) != "reply" {
		t.Fatalf("redelivery: %v %q, want the remembered reply", out, reply)
	}
	// Another phase with the same id is another request.
	other := key(1)
	other.phase = protocol.PhaseLogging
	lead(t, c, other)
}

func TestDedupJoinsRunningRequest(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	now := time.Now()
	e := lead(t, c, key(1))
	for _, r := range []string{"b", "c"} {
		if out, _, _, _ := c.begin(key(1), waiter{reply: r, start: now}); out != dedupJoined {
			t.Fatalf("duplicate while running: %v, want joined", out)
		}
	}
	ws := c.finish(e, []byte("reply"), "boom", true)
	if len(ws) != 2 || ws[0].reply != "b" || ws[1].reply != "c" {
		t.Fatalf("waiters = %+v, want b and c", ws)
	}
	if out, _, _, errText := c.begin(key(1), waiter{start: now}); out != dedupHit || errText != "boom" {
		t.Fatalf("after finish: %v %q", out, errText)
	}
	if ws := c.finish(e, nil, "", true); ws != nil {
		t.Fatalf("a second finish must do nothing: %v", ws)
	}
}

func TestDedupForgetsFailures(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	e := lead(t, c, key(1))
	c.begin(key(1), waiter{reply: "dup", start: time.Now()})
	if ws := c.finish(e, nil, "", false); len(ws) != 1 {
		t.Fatalf("a failed request must still release its waiters: %+v", ws)
	}
	lead(t, c, key(1)) // a retry after a transport failure runs
	if r, run := c.len(); r != 0 || run != 1 {
		t.Fatalf("len = %d remembered, %d running", r, run)
	}
}

func TestDedupBounds(t *testing.T) {
	now := time.Now()
	// Entry bound: the oldest go first.
	c := newDedupCache(time.Hour, 3, 1<<20)
	for i := range 5 {
		c.finish(lead(t, c, key(i)), []byte("r"), "", true)
	}
	if r, _ := c.len(); r != 3 {
		t.Fatalf("remembered %d, want 3", r)
	}
	for i, want := range []dedupOutcome{dedupLead, dedupLead, dedupHit, dedupHit, dedupHit} {
		out, e, _, _ := c.begin(key(i), waiter{start: now})
		if out != want {
			t.Errorf("key %d: %v, want %v", i, out, want)
		}
		if out == dedupLead {
			c.finish(e, nil, "", false)
		}
	}

	// Byte bound.
	c = newDedupCache(time.Hour, 100, 2*(1000+dedupOverhead))
	for i := range 4 {
		c.finish(lead(t, c, key(i)), make([]byte, 1000), "", true)
	}
	if r, _ := c.len(); r != 2 {
		t.Fatalf("remembered %d under the byte bound, want 2", r)
	}

	// Window: an old reply is forgotten.
	c = newDedupCache(50*time.Millisecond, 100, 1<<20)
	c.finish(lead(t, c, key(1)), []byte("r"), "", true)
	if out, _, _, _ := c.begin(key(1), waiter{start: time.Now().Add(time.Second)}); out != dedupLead {
		t.Fatalf("after the window: %v, want lead", out)
	}
}

func TestDedupRecyclesEntries(t *testing.T) {
	c := newDedupCache(time.Hour, 1, 1<<20)
	first := lead(t, c, key(1))
	c.finish(first, []byte("r"), "", true)
	c.finish(lead(t, c, key(2)), []byte("r"), "", true) // evicts key 1
	if again := lead(t, c, key(3)); again != first {
		t.Errorf("an evicted entry was not reused")
	}
	if out, _, _, _ := c.begin(key(1), waiter{start: time.Now()}); out != dedupLead {
		t.Errorf("evicted key 1 still answered")
	}
}

func TestDedupHashCollisionBypasses(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	a := key(1)
	// Same hash, different key: flip bits that cancel in hash().
	b := a
	b.phase ^= 1
	b.id[15] ^= 1
	if a.hash() != b.hash() || a == b {
		t.Fatalf("test keys do not collide")
	}
	ea := lead(t, c, a)
	if out, e, _, _ := c.begin(b, waiter{start: time.Now()}); out != dedupBypass || e != nil {
		t.Fatalf("colliding key: %v, want bypass", out)
	}
	c.finish(ea, []byte("a"), "", true)
	if out, _, reply, _ := c.begin(a, waiter{start: time.Now()}); out != dedupHit || string(reply) != "a" {
		t.Fatalf("a: %v %q", out, reply)
	}
}

// Duplicates of one running request wait for its reply up to maxWaiters;
// beyond that they are refused (dedupFull) rather than queued without
// bound. Waiters whose callers have stopped waiting make room, and a
// duplicate without a reply subject is not queued at all.
func TestDedupBoundsWaiters(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	now := time.Now()
	e := lead(t, c, key(1))
	for i := range maxWaiters {
		if out, _, _, _ := c.begin(key(1), waiter{reply: fmt.Sprint("r", i), start: now}); out != dedupJoined {
			t.Fatalf("duplicate %d: %v, want joined", i, out)
		}
	}
	if out, _, _, _ := c.begin(key(1), waiter{reply: "one too many", start: now}); out != dedupFull {
		t.Fatalf("duplicate %d: %v, want full", maxWaiters+1, out)
	}
	if out, _, _, _ := c.begin(key(1), waiter{start: now}); out != dedupJoined {
		t.Fatalf("fire-and-forget duplicate: %v, want joined", out)
	}
	if ws := c.finish(e, []byte("reply"), "", true); len(ws) != maxWaiters {
		t.Fatalf("finish returned %d waiters, want %d", len(ws), maxWaiters)
	}

	// Callers that gave up make room for one that still waits.
	e = lead(t, c, key(2))
	for i := range maxWaiters {
		c.begin(key(2), waiter{reply: fmt.Sprint("r", i), start: now, expires: now.Add(time.Millisecond)})
	}
	later := waiter{reply: "later", start: now.Add(time.Second), expires: now.Add(2 * time.Second)}
	if out, _, _, _ := c.begin(key(2), later); out != dedupJoined {
		t.Fatalf("duplicate after the others gave up: %v, want joined", out)
	}
	if ws := c.finish(e, []byte("reply"), "", true); len(ws) != 1 || ws[0].reply != "later" {
		t.Fatalf("waiters = %+v, want only the one still waiting", ws)
	}
}

// The same request id in another session is another request.
func TestDedupKeyHasTheSession(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	a := key(1)
	a.session = 1
	b := a
	b.session = 2
	ea := lead(t, c, a)
	lead(t, c, b)
	c.finish(ea, []byte("a"), "", true)
	if out, _, reply, _ := c.begin(a, waiter{start: time.Now()}); out != dedupHit || string(reply) != "a" {
		t.Fatalf("a: %v %q, want its own reply", out, reply)
	}
}
