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

func TestDedupRemembersWithinWindow(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	now := time.Now()
	if out, _, _ := c.begin(key(1), waiter{start: now}); out != dedupLead {
		t.Fatalf("first delivery: %v, want lead", out)
	}
	if ws := c.finish(key(1), []byte("reply"), "", true); len(ws) != 0 {
		t.Fatalf("waiters = %v", ws)
	}
	out, reply, _ := c.begin(key(1), waiter{start: now})
	if out != dedupHit || string(reply) != "reply" {
		t.Fatalf("redelivery: %v %q, want the remembered reply", out, reply)
	}
	// Another phase with the same id is another request.
	other := key(1)
	other.phase = protocol.PhaseLogging
	if out, _, _ := c.begin(other, waiter{start: now}); out != dedupLead {
		t.Fatalf("other phase: %v, want lead", out)
	}
}

func TestDedupJoinsRunningRequest(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	now := time.Now()
	c.begin(key(1), waiter{reply: "a", start: now})
	for _, r := range []string{"b", "c"} {
		if out, _, _ := c.begin(key(1), waiter{reply: r, start: now}); out != dedupJoined {
			t.Fatalf("duplicate while running: %v, want joined", out)
		}
	}
	ws := c.finish(key(1), []byte("reply"), "boom", true)
	if len(ws) != 2 || ws[0].reply != "b" || ws[1].reply != "c" {
		t.Fatalf("waiters = %+v, want b and c", ws)
	}
	if out, _, errText := c.begin(key(1), waiter{start: now}); out != dedupHit || errText != "boom" {
		t.Fatalf("after finish: %v %q", out, errText)
	}
}

func TestDedupForgetsFailures(t *testing.T) {
	c := newDedupCache(time.Hour, 10, 1<<20)
	now := time.Now()
	c.begin(key(1), waiter{start: now})
	c.begin(key(1), waiter{reply: "dup", start: now})
	if ws := c.finish(key(1), nil, "", false); len(ws) != 1 {
		t.Fatalf("a failed request must still release its waiters: %+v", ws)
	}
	if out, _, _ := c.begin(key(1), waiter{start: now}); out != dedupLead {
		t.Fatalf("retry after a transport failure: %v, want lead (not remembered)", out)
	}
	if r, run := c.len(); r != 0 || run != 1 {
		t.Fatalf("len = %d remembered, %d running", r, run)
	}
}

func TestDedupBounds(t *testing.T) {
	now := time.Now()
	// Entry bound: the oldest go first.
	c := newDedupCache(time.Hour, 3, 1<<20)
	for i := range 5 {
		c.begin(key(i), waiter{start: now})
		c.finish(key(i), []byte("r"), "", true)
	}
	if r, _ := c.len(); r != 3 {
		t.Fatalf("remembered %d, want 3", r)
	}
	for i, want := range []dedupOutcome{dedupLead, dedupLead, dedupHit, dedupHit, dedupHit} {
		out, _, _ := c.begin(key(i), waiter{start: now})
		if out != want {
			t.Errorf("key %d: %v, want %v", i, out, want)
		}
		if out == dedupLead {
			c.finish(key(i), nil, "", false)
		}
	}

	// Byte bound.
	c = newDedupCache(time.Hour, 100, 2*(1000+dedupOverhead))
	for i := range 4 {
		c.begin(key(i), waiter{start: now})
		c.finish(key(i), make([]byte, 1000), "", true)
	}
	if r, _ := c.len(); r != 2 {
		t.Fatalf("remembered %d under the byte bound, want 2", r)
	}

	// Window: an old reply is forgotten.
	c = newDedupCache(50*time.Millisecond, 100, 1<<20)
	c.begin(key(1), waiter{start: now})
	c.finish(key(1), []byte("r"), "", true)
	if out, _, _ := c.begin(key(1), waiter{start: time.Now().Add(time.Second)}); out != dedupLead {
		t.Fatalf("after the window: %v, want lead", out)
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
	now := time.Now()
	c.begin(a, waiter{start: now})
	if out, _, _ := c.begin(b, waiter{start: now}); out != dedupBypass {
		t.Fatalf("colliding key: %v, want bypass", out)
	}
	if ws := c.finish(b, []byte("x"), "", true); ws != nil {
		t.Fatalf("finish of a bypassed key touched the entry")
	}
	c.finish(a, []byte("a"), "", true)
	if out, reply, _ := c.begin(a, waiter{start: now}); out != dedupHit || string(reply) != "a" {
		t.Fatalf("a: %v %q", out, reply)
	}
}
