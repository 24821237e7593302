package logsample

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// records is a slog.Handler keeping every record, for the tests to read.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
	min  slog.Level
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= r.min }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// summaries returns the summary records: message, suppressed count and
// the other attributes.
func (r *records) summaries() []summaryLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []summaryLine
	for _, rec := range r.recs {
		s := summaryLine{msg: rec.Message, level: rec.Level, attrs: map[string]string{}}
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "suppressed" {
				s.n = a.Value.Int64()
			}
			s.attrs[a.Key] = a.Value.String()
			return true
		})
		if _, ok := s.attrs["suppressed"]; ok {
			out = append(out, s)
		}
	}
	return out
}

type summaryLine struct {
	msg   string
	level slog.Level
	n     int64
	attrs map[string]string
}

// clock is a time the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTest returns a sampler on a clock the test moves. Its timer still
// runs on real time: tests that use it keep the interval long.
func newTest(cfg Config) (*Sampler, *records, *clock) {
	rec := &records{min: slog.LevelInfo}
	s := New(slog.New(rec), cfg)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s.now = c.now
	return s, rec, c
}

func allowN(s *Sampler, level slog.Level, k Key, n int) int {
	ok := 0
	for range n {
		if s.Allow(context.Background(), level, k) {
			ok++
		}
	}
	return ok
}

// The first lines of an interval pass, the rest are counted, and the next
// line of the key after the interval writes their summary first.
func TestAllowIntervalRollOver(t *testing.T) {
	s, rec, c := newTest(Config{First: 3, Interval: time.Hour})
	k := KeyOf("gateway: request failed", "route", "/x", "plugin", "p")
	if got := allowN(s, slog.LevelWarn, k, 10); got != 3 {
		t.Fatalf("%d of 10 lines allowed in one interval, want 3", got)
	}
	if sums := rec.summaries(); len(sums) != 0 {
		t.Fatalf("summary before the interval ended: %+v", sums)
	}
	c.add(time.Hour)
	if !s.Allow(context.Background(), slog.LevelWarn, k) {
		t.Fatal("first line of the next interval suppressed")
	}
	sums := rec.summaries()
	if len(sums) != 1 {
		t.Fatalf("%d summaries after the roll-over, want 1: %+v", len(sums), sums)
	}
	got := sums[0]
	if got.msg != "gateway: request failed" || got.n != 7 || got.level != slog.LevelWarn ||
		got.attrs["route"] != "/x" || got.attrs["plugin"] != "p" || got.attrs["interval"] != "1h0m0s" {
		t.Fatalf("summary %+v, want the message, suppressed 7, interval 1h, route /x, plugin p at WARN", got)
	}
	// The new interval has its own budget, and an interval that dropped
	// nothing reports nothing.
	if got := allowN(s, slog.LevelWarn, k, 2); got != 2 {
		t.Fatalf("%d of 2 more lines allowed, want 2", got)
	}
	c.add(time.Hour)
	allowN(s, slog.LevelWarn, k, 1)
	if n := len(rec.summaries()); n != 1 {
		t.Fatalf("%d summaries, want still 1", n)
	}
}

// Keys have their own budgets; the summary takes the highest level it
// suppressed; a level the logger drops is not counted.
func TestAllowKeysAndLevels(t *testing.T) {
	s, rec, c := newTest(Config{First: 1, Interval: time.Hour})
	a := KeyOf("m", "route", "/a")
	b := KeyOf("m", "route", "/b")
	if allowN(s, slog.LevelWarn, a, 1) != 1 || allowN(s, slog.LevelWarn, b, 1) != 1 {
		t.Fatal("the first line of each key must pass")
	}
	allowN(s, slog.LevelWarn, a, 2)
	allowN(s, slog.LevelError, a, 1)
	if s.Allow(context.Background(), slog.LevelDebug, a) {
		t.Fatal("a DEBUG line allowed by a logger at INFO")
	}
	c.add(time.Hour)
	s.Flush()
	sums := rec.summaries()
	if len(sums) != 1 || sums[0].n != 3 || sums[0].level != slog.LevelError || sums[0].attrs["route"] != "/a" {
		t.Fatalf("summaries %+v, want one for /a: suppressed 3 at ERROR", sums)
	}
}

// Past MaxKeys, new keys share the overflow key; once their intervals are
// over, tracked keys are forgotten and new ones get their own again.
func TestAllowKeyCap(t *testing.T) {
	s, rec, c := newTest(Config{First: 2, Interval: time.Hour, MaxKeys: 3})
	for i := range 3 {
		allowN(s, slog.LevelWarn, KeyOf("m", "route", fmt.Sprint(i)), 1)
	}
	// Ten more keys, five lines each: two lines pass through the overflow
	// key in all, the other 48 are its suppressed count.
	passed := 0
	for i := range 10 {
		passed += allowN(s, slog.LevelWarn, KeyOf("m", "route", fmt.Sprint(100+i)), 5)
	}
	if passed != 2 {
		t.Fatalf("%d lines of keys past the cap passed, want 2 (the overflow key's budget)", passed)
	}
	if n := len(s.entries); n != 4 {
		t.Fatalf("%d keys tracked, want 3 and the overflow key", n)
	}
	// The old keys' intervals are over: the next new key sweeps them out
	// and is tracked on its own again.
	c.add(time.Hour)
	if got := allowN(s, slog.LevelWarn, KeyOf("m", "route", "new"), 3); got != 2 {
		t.Fatalf("new key after the sweep: %d of 3 lines passed, want its own 2", got)
	}
	if _, ok := s.entries[KeyOf("m", "route", "new")]; !ok || len(s.entries) != 2 {
		t.Fatalf("after the sweep: %d keys (want the new one and the overflow key with its count), new key tracked %v", len(s.entries), ok)
	}
	s.Flush()
	sums := rec.summaries()
	if len(sums) != 2 || sums[0].n+sums[1].n != 49 {
		t.Fatalf("summaries %+v, want the overflow key's 48 and the new key's 1", sums)
	}
	for _, sum := range sums {
		if sum.n == 48 && (sum.msg != "m" || sum.attrs["sample_key"] != "overflow") {
			t.Fatalf("overflow summary %+v, want msg \"m\" sample_key=overflow", sum)
		}
	}
}

// Past MaxKeys, each message has an overflow budget of its own: a storm of
// one kind of line over many routes leaves the other kinds their lines.
// Past maxOverflowKeys messages, the rest share the generic one.
func TestOverflowBudgetPerMessage(t *testing.T) {
	s, rec, _ := newTest(Config{First: 2, Interval: time.Hour, MaxKeys: 1})
	allowN(s, slog.LevelWarn, KeyOf("first"), 1)
	for i := range 100 {
		allowN(s, slog.LevelWarn, KeyOf("gateway: request failed", "route", fmt.Sprint(i)), 1)
	}
	if got := allowN(s, slog.LevelWarn, KeyOf("platform: handler trapped", "subject", "x"), 3); got != 2 {
		t.Fatalf("another message past the cap: %d of 3 lines passed, want its own 2", got)
	}
	for i := range maxOverflowKeys + 5 {
		allowN(s, slog.LevelWarn, KeyOf(fmt.Sprint("message ", i)), 3)
	}
	s.mu.Lock()
	tracked, overflows := len(s.entries), s.overflows
	s.mu.Unlock()
	if overflows != maxOverflowKeys+1 || tracked != 1+overflows {
		t.Fatalf("%d entries, %d of them overflow keys; want 1 key and %d overflow keys (the bound and the generic one)",
			tracked, overflows, maxOverflowKeys+1)
	}
	s.Flush()
	got := map[string]int64{}
	for _, sum := range rec.summaries() {
		if sum.attrs["sample_key"] != "overflow" {
			t.Fatalf("summary %+v without sample_key=overflow", sum)
		}
		got[sum.msg] = sum.n
	}
	// 62 of 64 overflow slots go to "message 0".."message 61", 3 lines
	// each (one suppressed); the last 7 messages' 21 lines share the
	// generic key's 2.
	if got["gateway: request failed"] != 98 || got["platform: handler trapped"] != 1 ||
		got["message 0"] != 1 || got["log lines suppressed"] != 19 {
		t.Fatalf("summaries by message %v, want request failed 98, handler trapped 1, message 0 1, generic 19", got)
	}
}

// A storm that stops still reports its count: the timer writes the summary
// once the interval is over, with no further line of the key.
func TestSummaryAfterStormStops(t *testing.T) {
	rec := &records{min: slog.LevelInfo}
	s := New(slog.New(rec), Config{First: 10, Interval: 100 * time.Millisecond})
	k := KeyOf("platform: handler trapped", "subject", "nylon.dev.f.request_filter")
	start := time.Now()
	passed := allowN(s, slog.LevelWarn, k, 500)
	deadline := time.Now().Add(3 * time.Second)
	var total int64
	for time.Now().Before(deadline) {
		total = 0
		for _, sum := range rec.summaries() {
			total += sum.n
		}
		if int(total)+passed == 500 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if int(total)+passed != 500 {
		t.Fatalf("%d lines passed and %d reported suppressed, want 500 in all", passed, total)
	}
	if passed < 10 || passed > 10*(int(time.Since(start)/(100*time.Millisecond))+1) {
		t.Fatalf("%d lines passed in %v at 10 per 100ms", passed, time.Since(start))
	}
}

// Under concurrent use every line is either written or counted exactly
// once in a summary (run with -race).
func TestAllowConcurrent(t *testing.T) {
	rec := &records{min: slog.LevelInfo}
	s := New(slog.New(rec), Config{First: 5, Interval: 5 * time.Millisecond, MaxKeys: 2})
	keys := []Key{KeyOf("a"), KeyOf("b"), KeyOf("c"), KeyOf("d")}
	const workers, per = 8, 2000
	var wg sync.WaitGroup
	var passed [workers]int
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if s.Allow(context.Background(), slog.LevelWarn, keys[(w+i)%len(keys)]) {
					passed[w]++
				}
			}
		}()
	}
	wg.Wait()
	s.Flush()
	want := int64(workers * per)
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := int64(0)
		for _, n := range passed {
			got += int64(n)
		}
		for _, sum := range rec.summaries() {
			got += sum.n
		}
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lines written plus suppressed: %d, want %d", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	n := len(s.entries)
	s.mu.Unlock()
	if n > 4 {
		t.Fatalf("%d keys tracked, want at most MaxKeys 2 and the overflow keys of the other 2 messages", n)
	}
}
