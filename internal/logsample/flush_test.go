package logsample

import (
	"log/slog"
	"testing"
	"time"
)

// Flush at a shutdown, racing the timer armed for the same drops, reports
// each suppressed line once: the timer firing after it writes nothing
// more, and arms itself no more.
func TestFlushThenTimerReportsOnce(t *testing.T) {
	rec := &records{min: slog.LevelInfo}
	s := New(slog.New(rec), Config{First: 10, Interval: 30 * time.Millisecond})
	k := KeyOf("gateway: request failed", "route", "/x")
	passed := allowN(s, slog.LevelWarn, k, 25)
	s.Flush()
	time.Sleep(120 * time.Millisecond) // the timer has fired by now
	var total int64
	sums := rec.summaries()
	for _, sum := range sums {
		total += sum.n
	}
	if int(total)+passed != 25 || len(sums) != 1 {
		t.Fatalf("%d passed, summaries %+v: want 25 in all, in one summary", passed, sums)
	}
	s.mu.Lock()
	armed, n := s.armed, len(s.entries)
	s.mu.Unlock()
	if armed || n != 0 {
		t.Fatalf("after the timer: armed %v, %d keys tracked; want no timer and no key", armed, n)
	}
}
