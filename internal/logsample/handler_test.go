package logsample

import (
	"context"
	"log/slog"
	"testing"
	"time"
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
