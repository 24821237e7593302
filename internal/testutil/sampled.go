package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/logsample"
)

// SampledLines counts one kind of log line under a logsample.Sampler: the
// lines written, and the lines its summaries report suppressed.
type SampledLines struct {
	Written, Suppressed, Summaries int
}

// Add counts a line: a summary of suppressed lines when suppressed is not
// nil, else a line written.
func (s *SampledLines) Add(suppressed *int) {
	if suppressed == nil {
		s.Written++
		return
	}
	s.Suppressed += *suppressed
	s.Summaries++
}

// WaitSampled polls count until the lines it finds, written and reported
// suppressed, add up to total, for at most 5 s (a summary comes within an
// interval of the key's last line), and fails the test otherwise. Then it
// checks the budget over a burst of that length: at most
// logsample.DefaultFirst lines written per interval (intervals start at a
// key's first line after the previous one ended, so burst/interval + 1 of
// them) and at most one summary per interval.
func WaitSampled(t testing.TB, what string, total int, burst time.Duration, count func() SampledLines) SampledLines {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	got := count()
	for got.Written+got.Suppressed != total && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got = count()
	}
	if got.Written+got.Suppressed != total {
		t.Fatalf("%s: %d lines written and %d reported suppressed (%d summaries) 5 s after the burst; want %d in all",
			what, got.Written, got.Suppressed, got.Summaries, total)
	}
	windows := int(burst/logsample.DefaultInterval) + 1
	if got.Written > logsample.DefaultFirst*windows || got.Summaries > windows {
		t.Errorf("%s: %d lines written and %d summaries over a %v burst; want at most %d per %v and a summary each",
			what, got.Written, got.Summaries, burst, logsample.DefaultFirst, logsample.DefaultInterval)
	}
	t.Logf("%s: %d in %v: %d lines written, %d summaries", what, total, burst, got.Written, got.Summaries)
	return got
}

// SampledJSON counts the lines with message msg in logs written by slog's
// JSONHandler, lines written and summaries alike, and fails the test for
// one that is not at level or whose subject attribute is not subject.
func SampledJSON(t testing.TB, logs []byte, msg, level, subject string) SampledLines {
	t.Helper()
	var n SampledLines
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Level, Msg, Subject string
			Suppressed          *int
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if r.Msg != msg {
			continue
		}
		if r.Level != level || r.Subject != subject {
			t.Errorf("line %s: want a %s with subject %s", sc.Text(), level, subject)
		}
		n.Add(r.Suppressed)
	}
	return n
}
