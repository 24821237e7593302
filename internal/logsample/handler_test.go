package logsample

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// The handler samples WARN and ERROR records by message and the named
// attributes, passes lower levels untouched, and keeps sampling through
// With.
func TestHandlerSamplesByMessageAndAttrs(t *testing.T) {
	s, rec, c := newTest(Config{First: 2, Interval: time.Hour})
	log := slog.New(s.Handler(rec, "header")).With("route", "/x")
	for range 5 {
		log.Warn("gateway: header op refused", "op", 100, "header", "Connection")
		log.Warn("gateway: header op refused", "op", 100, "header", "Host")
		log.Info("detail", "header", "Connection")
	}
	written := func(msg, header string) int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, r := range rec.recs {
			h := ""
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "header" {
					h = a.Value.String()
				}
				return true
			})
			if r.Message == msg && h == header {
				n++
			}
		}
		return n
	}
	if n := written("gateway: header op refused", "Connection"); n != 2 {
		t.Errorf("%d lines about Connection written, want 2 (First)", n)
	}
	if n := written("gateway: header op refused", "Host"); n != 2 {
		t.Errorf("%d lines about Host written, want 2: each header value is a key of its own", n)
	}
	if n := written("detail", "Connection"); n != 5 {
		t.Errorf("%d INFO lines written, want all 5: only WARN and ERROR are sampled", n)
	}
	c.add(time.Hour)
	s.Flush()
	var total int64
	for _, sum := range rec.summaries() {
		if sum.msg != "gateway: header op refused" || sum.attrs["header"] == "" {
			t.Errorf("summary %+v, want the message and its header", sum)
		}
		total += sum.n
	}
	if total != 6 {
		t.Errorf("summaries count %d suppressed lines, want 6", total)
	}
	if !log.Handler().Enabled(context.Background(), slog.LevelInfo) || log.Handler().Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled must be the next handler's")
	}
}

// A key's values may be large and chosen outside the code (a refused
// header's name is a plugin's): a key keeps at most its first 128 bytes
// of each, in memory of its own, so that MaxKeys keys that never
// repeat cannot hold on to MaxKeys large strings (or to the replies they
// were cut from) for as long as no new key sweeps them out.
func TestKeysHoldNoLargeValues(t *testing.T) {
	s, rec, _ := newTest(Config{First: 1, Interval: time.Hour})
	big := strings.Repeat("ä", 1<<19) + "\r" // 1 MiB and a byte, cut mid-rune at any even length
	slog.New(s.Handler(rec, "header")).Warn("gateway: header op refused", "header", big)
	s.Allow(context.Background(), slog.LevelWarn, KeyOf("m", "subject", big))
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) != 2 {
		t.Fatalf("%d keys, want 2", len(s.entries))
	}
	for k, e := range s.entries {
		for _, v := range []string{k.msg, k.kv[0], k.kv[1], k.kv[2], k.kv[3], e.key.kv[1]} {
			if len(v) > 128 {
				t.Errorf("a key holds a value of %d bytes, want at most 128", len(v))
			}
			if !utf8.ValidString(v) {
				t.Errorf("key value %q cut inside a rune", v)
			}
			if len(v) > 0 && unsafe.StringData(v) == unsafe.StringData(big) {
				t.Error("a key shares the caller's string: the whole of it stays in memory")
			}
		}
	}
}
