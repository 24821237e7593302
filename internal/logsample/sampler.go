package logsample

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults of Config. Ten lines a second per key, as the kernel's printk
// rate limit lets ten through per interval: enough to see a few whole
// examples of each failure, few enough that a storm over a handful of
// routes stays readable. zap's production sampler lets 100 a second through,
// but keyed by level and message alone; ours is keyed by route and plugin
// (or subject) too, so there are more keys.
const (
	DefaultFirst    = 10
	DefaultInterval = time.Second
	DefaultMaxKeys  = 1024
)

// Config sets a Sampler's budget. Zero or negative values take the
// defaults.
type Config struct {
	// First is how many lines of one key are written per interval.
	First int
	// Interval is the length of the window First counts over, and at
	// most how long a suppressed count waits to be reported.
	Interval time.Duration
	// MaxKeys bounds the keys tracked at once; lines of keys beyond it
	// share one overflow key per message.
	MaxKeys int
}

// Key tells lines apart for sampling: a message and up to two attributes
// naming what the line is about. Build it with KeyOf. Keys are compared by
// value, so building one allocates nothing.
type Key struct {
	msg string
	kv  [4]string // name, value, name, value
}

// KeyOf is the key of lines with message msg about what the name/value
// pairs in kv say, e.g. KeyOf(msg, "route", "/api", "plugin", "auth").
// Pairs past the second are ignored; a name without a value gets "". The
// pairs are repeated on the summary line. A value longer than 128 bytes
// counts (and is repeated) by its first 128.
func KeyOf(msg string, kv ...string) Key {
	k := Key{msg: msg}
	copy(k.kv[:], kv)
	for i := range k.kv {
		k.kv[i] = cutKeyValue(k.kv[i])
	}
	return k
}

// maxKeyValue bounds a key's values. Some come from outside the code (a
// refused header's name is a plugin's, up to a NATS message long): a key
// is held until an interval after its last line, and only when the map is
// full do new keys sweep it out, so MaxKeys keys of unbounded values
// could hold on to MaxKeys large strings long after the lines stopped.
const maxKeyValue = 128

// cutKeyValue is v cut to maxKeyValue bytes, at a UTF-8 boundary. It
// allocates nothing: add copies what the map keeps.
func cutKeyValue(v string) string {
	if len(v) <= maxKeyValue {
		return v
	}
	i := maxKeyValue
	for i > 0 && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i]
}

// clone is k in memory of its own: a value cut by cutKeyValue is still a
// slice of the caller's (possibly large) string.
func (k Key) clone() Key {
	c := Key{msg: strings.Clone(k.msg)}
	for i, v := range k.kv {
		c.kv[i] = strings.Clone(v)
	}
	return c
}

// maxOverflowKeys bounds the overflow keys. Messages are the code's
// constants, a few dozen in all, so the bound is only a backstop: past it,
// every message shares genericOverflowKey.
const maxOverflowKeys = 64

// overflowKey is shared by the lines with message msg of keys past
// MaxKeys: one per message, so that a storm of one kind of line over many
// routes does not use up the budget of every other kind, and its summary
// still says which lines it counted.
func overflowKey(msg string) Key {
	return Key{msg: msg, kv: [4]string{"sample_key", "overflow"}}
}

// genericOverflowKey is shared by every line once maxOverflowKeys
// overflow keys are tracked too.
func genericOverflowKey() Key {
	return overflowKey("log lines suppressed")
}

// Sampler decides which per-request lines to write. It is safe for
// concurrent use. Build it with New.
type Sampler struct {
	log      *slog.Logger
	first    int
	interval time.Duration
	maxKeys  int
	now      func() time.Time // time.Now; tests move it

	mu      sync.Mutex
	entries map[Key]*entry
	// overflows counts the entries of entries that are overflow keys.
	overflows int
	// timer reports the drops of intervals no later line rolls over;
	// armed only while some key has drops to report.
	timer     *time.Timer
	armed     bool
	nextSweep time.Time
}

// entry is one key's current interval.
type entry struct {
	key      Key
	overflow bool      // key is an overflow key, not counted against MaxKeys
	end      time.Time // when the interval ends
	n        int       // lines in the interval, written or not
	dropped  int64
	level    slog.Level // the highest level dropped
}

// summary is a count of suppressed lines to write.
type summary struct {
	key     Key
	dropped int64
	level   slog.Level
}

// New returns a sampler writing its summary lines to log.
func New(log *slog.Logger, cfg Config) *Sampler {
	s := &Sampler{
		log:      log,
		first:    cfg.First,
		interval: cfg.Interval,
		maxKeys:  cfg.MaxKeys,
		now:      time.Now,
		entries:  make(map[Key]*entry),
	}
	if s.first <= 0 {
		s.first = DefaultFirst
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.maxKeys <= 0 {
		s.maxKeys = DefaultMaxKeys
	}
	return s
}

// Allow reports whether a line of level with key k should be written now,
// and counts it as suppressed otherwise. When k's previous interval
// suppressed lines, their summary is written before Allow returns, so it
// precedes the line the caller writes. A level the logger does not write
// is neither written nor counted.
//
// Check Allow before building the line's attributes: a suppressed line
// then costs a map lookup under a mutex and nothing else.
func (s *Sampler) Allow(ctx context.Context, level slog.Level, k Key) bool {
	if !s.log.Enabled(ctx, level) {
		return false
	}
	now := s.now()
	s.mu.Lock()
	e := s.entries[k]
	if e == nil {
		e = s.add(k, now)
	}
	var sum summary
	if !now.Before(e.end) {
		if e.dropped > 0 {
			sum = summary{key: e.key, dropped: e.dropped, level: e.level}
		}
		e.end, e.n, e.dropped = now.Add(s.interval), 0, 0
	}
	e.n++
	ok := e.n <= s.first
	if !ok {
		if e.dropped == 0 || level > e.level {
			e.level = level
		}
		e.dropped++
		s.arm(now, e.end)
	}
	s.mu.Unlock()
	if sum.dropped > 0 {
		s.report(ctx, sum)
	}
	return ok
}

// Flush writes the summaries of every key that suppressed lines so far,
// without waiting for their intervals to end: for a shutdown, so that the
// counts are not lost with the process.
func (s *Sampler) Flush() {
	s.mu.Lock()
	sums := s.collect(s.now(), true)
	s.mu.Unlock()
	for _, sum := range sums {
		s.report(context.Background(), sum)
	}
}

// add makes k's entry, or returns its message's overflow entry when
// MaxKeys are tracked. Call with mu held.
func (s *Sampler) add(k Key, now time.Time) *entry {
	overflow := false
	if s.keys() >= s.maxKeys {
		s.sweep(now)
		if s.keys() >= s.maxKeys {
			overflow = true
			k = overflowKey(cutKeyValue(k.msg))
			if e := s.entries[k]; e != nil {
				return e
			}
			if s.overflows >= maxOverflowKeys {
				k = genericOverflowKey()
				if e := s.entries[k]; e != nil {
					return e
				}
			}
		}
	}
	k = k.clone()
	e := &entry{key: k, overflow: overflow}
	s.entries[k] = e
	if overflow {
		s.overflows++
	}
	return e
}

// keys is the number of keys tracked besides the overflow keys.
func (s *Sampler) keys() int { return len(s.entries) - s.overflows }

// forget deletes k's entry e. Call with mu held.
func (s *Sampler) forget(k Key, e *entry) {
	delete(s.entries, k)
	if e.overflow {
		s.overflows--
	}
}

// sweep forgets the keys whose interval is over with nothing to report
// (a new line of one starts afresh anyway), at most once an interval, so
// that a full map of live keys does not cost a scan per line. Call with mu
// held.
func (s *Sampler) sweep(now time.Time) {
	if now.Before(s.nextSweep) {
		return
	}
	s.nextSweep = now.Add(s.interval)
	for k, e := range s.entries {
		if !now.Before(e.end) && e.dropped == 0 {
			s.forget(k, e)
		}
	}
}

// collect takes the summaries of the intervals over by now (all: of every
// key with drops) and forgets the keys whose interval is over. Call with
// mu held.
func (s *Sampler) collect(now time.Time, all bool) []summary {
	var sums []summary
	for k, e := range s.entries {
		over := !now.Before(e.end)
		if e.dropped > 0 && (over || all) {
			sums = append(sums, summary{key: e.key, dropped: e.dropped, level: e.level})
			e.dropped = 0
		}
		if over {
			s.forget(k, e)
		}
	}
	return sums
}

// arm starts the timer, unless it runs, to fire at the end of an interval
// that dropped lines. Call with mu held.
func (s *Sampler) arm(now, at time.Time) {
	if s.armed {
		return
	}
	s.armed = true
	d := at.Sub(now)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.tick)
		return
	}
	s.timer.Reset(d)
}

// tick reports the intervals that are over, and arms the timer again for
// the earliest one still dropping.
func (s *Sampler) tick() {
	now := s.now()
	s.mu.Lock()
	s.armed = false
	sums := s.collect(now, false)
	var next time.Time
	for _, e := range s.entries {
		if e.dropped > 0 && (next.IsZero() || e.end.Before(next)) {
			next = e.end
		}
	}
	if !next.IsZero() {
		s.arm(now, next)
	}
	s.mu.Unlock()
	for _, sum := range sums {
		s.report(context.Background(), sum)
	}
}

// report writes one summary line: the message of the lines suppressed,
// how many, over what interval, and the key's attributes.
func (s *Sampler) report(ctx context.Context, sum summary) {
	attrs := make([]slog.Attr, 0, 4)
	attrs = append(attrs, slog.Int64("suppressed", sum.dropped), slog.Duration("interval", s.interval))
	for i := 0; i < len(sum.key.kv); i += 2 {
		if sum.key.kv[i] != "" {
			attrs = append(attrs, slog.String(sum.key.kv[i], sum.key.kv[i+1]))
		}
	}
	s.log.LogAttrs(ctx, sum.level, sum.key.msg, attrs...)
}
