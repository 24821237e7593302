package protocol

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFormatTimeout(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{time.Second, "1000"},
		{1500 * time.Millisecond, "1500"},
		{1500*time.Millisecond + time.Nanosecond, "1501"}, // never announce less than the wait
		{time.Microsecond, "1"},
		{0, "1"},
		{-time.Second, "1"},
		{MaxTimeout, "86400000"},
		{MaxTimeout + time.Hour, "86400000"},
	} {
		if got := FormatTimeout(c.d); got != c.want {
			t.Errorf("FormatTimeout(%v) = %q, want %q", c.d, got, c.want)
		}
		if d, err := ParseTimeout(FormatTimeout(c.d)); err != nil || d < min(max(c.d, time.Millisecond), MaxTimeout) {
			t.Errorf("ParseTimeout(FormatTimeout(%v)) = %v, %v", c.d, d, err)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"1":        time.Millisecond,
		"250":      250 * time.Millisecond,
		"00042":    42 * time.Millisecond,
		"86400000": MaxTimeout,
	} {
		if got, err := ParseTimeout(s); err != nil || got != want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-5", "+5", "1.5", "5s", " 5", "5 ", "86400001", "999999999", "0x10", "١٢", strings.Repeat("9", 40)} {
		d, err := ParseTimeout(s)
		var de *DecodeError
		if err == nil || !errors.Is(err, ErrDecode) || !errors.As(err, &de) || !strings.Contains(err.Error(), HeaderTimeout) {
			t.Errorf("ParseTimeout(%q) = %v, %v; want a decode error naming the header", s, d, err)
		}
		if len(err.Error()) > 200 {
			t.Errorf("ParseTimeout(%q): error of %d bytes: %s", s, len(err.Error()), err)
		}
	}
}

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"1", "1500", "86400000", "0", "", "-1", "99999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeout(s)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("ParseTimeout(%q): %v does not wrap ErrDecode", s, err)
			}
			return
		}
		if d < time.Millisecond || d > MaxTimeout || d%time.Millisecond != 0 {
			t.Fatalf("ParseTimeout(%q) = %v: out of range", s, d)
		}
		// What parses formats back to the same number of milliseconds.
		if back, err := ParseTimeout(FormatTimeout(d)); err != nil || back != d {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
	})
}
