package abi

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxLogLine is the longest guest log message or output line passed on; the
// rest is cut, so one huge line cannot blow up the node's log.
const MaxLogLine = 4 << 10

// Limiter is a token bucket shared by every instance of one function, for
// its log records and output lines together. A guest logging in a loop gets
// its burst and then its rate; the rest is counted and reported as one
// "dropped" record once it may log again.
type Limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	tokens  float64
	last    time.Time
	dropped uint64
	now     func() time.Time // time.Now; tests replace it
}

// NewLimiter returns a limiter allowing perSecond records on average and
// burst at once. perSecond <= 0 allows nothing (every record is dropped and
// counted).
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{rate: perSecond, burst: float64(burst), tokens: float64(burst), last: time.Now(), now: time.Now}
}

// allow takes a token. When it succeeds after a run of refusals it returns
// how many were refused, for the caller to report.
func (l *Limiter) allow() (ok bool, dropped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.rate > 0 {
		l.tokens += now.Sub(l.last).Seconds() * l.rate
		if l.tokens > l.burst {
			l.tokens = l.burst
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// Dropped returns how many records were refused and not yet reported.
func (l *Limiter) Dropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// emit logs one guest record if the function's limiter allows it.
func (s *State) emit(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	ok, dropped := s.limiter.allow()
	if !ok {
		return
	}
	if dropped > 0 {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "guest log records dropped by rate limit", slog.Uint64("dropped", dropped))
	}
	if s.active {
		attrs = append(attrs, slog.String("phase", s.phase.String()))
		if !s.reqID.IsZero() {
			attrs = append(attrs, slog.String("request_id", s.reqID.String()))
		}
	}
	s.logger.LogAttrs(ctx, level, msg, attrs...)
}

// log implements the log import.
func (s *State) log(ctx context.Context, level int32, msg []byte) {
	if !s.logger.Enabled(ctx, slog.Level(level)) {
		return // checked first: a disabled level costs neither a token nor a copy
	}
	s.emit(ctx, slog.Level(level), clip(msg))
}

// clip returns msg as a string of at most MaxLogLine bytes, cut on a rune
// boundary.
func clip(msg []byte) string { return clipTo(msg, MaxLogLine) }

// clipTo returns msg as a string of at most max bytes, cut on a rune
// boundary and marked "…" when cut.
func clipTo(msg []byte, max int) string {
	if len(msg) <= max {
		return string(msg)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return string(msg[:cut]) + "…"
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b, left
// there when a long line was cut at a byte count.
func trimPartialRune(b []byte) []byte {
	i := len(b) - 1
	for i >= 0 && len(b)-i < utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i--
	}
	if i >= 0 && !utf8.FullRune(b[i:]) {
		return b[:i]
	}
	return b
}

// Output is a guest's stdout or stderr: an io.Writer that turns lines into
// log records of the function (message "guest output", attrs stream and
// text), under the function's Limiter. One instance writes to it at a time.
type Output struct {
	state  *State
	stream string
	level  slog.Level
	line   []byte
	long   bool // the current line passed MaxLogLine; drop until '\n'
	// first is the first line written, kept whether or not it was logged:
	// when a module fails to start, the reason its runtime printed (a Go
	// guest's "panic: ..." from init) goes into the error the uploader
	// sees, not only into a log they may not read.
	first string
}

// maxFirstLine bounds Output.First.
const maxFirstLine = 256

// First returns the first non-blank line written (at most 256 bytes), or "".
func (o *Output) First() string { return o.first }

// NewOutput returns the writer for stream ("stdout" or "stderr") of the
// instance owning s, logging at level.
func NewOutput(s *State, stream string, level slog.Level) *Output {
	return &Output{state: s, stream: stream, level: level}
}

// Write splits p into lines and logs each complete one. It never fails: a
// guest's output must not make its write call error.
func (o *Output) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !o.long {
			if room := MaxLogLine - len(o.line); len(chunk) > room {
				o.line = append(o.line, chunk[:room]...)
				o.long = true
			} else {
				o.line = append(o.line, chunk...)
			}
		}
		if i < 0 {
			break
		}
		o.Flush()
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a pending partial line. Blank lines are not logged.
func (o *Output) Flush() {
	if len(o.line) == 0 && !o.long {
		return
	}
	var text string
	if o.long {
		text = string(trimPartialRune(o.line)) + "…"
	} else {
		text = string(o.line)
	}
	if o.first == "" {
		o.first = clipTo([]byte(text), maxFirstLine)
	}
	o.line = o.line[:0]
	o.long = false
	if cap(o.line) > MaxLogLine {
		o.line = nil
	}
	ctx := context.Background()
	if !o.state.logger.Enabled(ctx, o.level) {
		return
	}
	o.state.emit(ctx, o.level, "guest output", slog.String("stream", o.stream), slog.String("text", text))
}
