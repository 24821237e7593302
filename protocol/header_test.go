package protocol

import (
	"strings"
	"testing"
)

// TestValidHeaderValue: every control character but HTAB is refused, in any
// position; SP, visible ASCII and obs-text (0x80-0xFF) are allowed.
func TestValidHeaderValue(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c == '\t' || c >= ' ' && c != 0x7f
		b := string([]byte{byte(c)})
		for _, v := range []string{b, "a" + b, b + "b", "a" + b + "b"} {
			if got := ValidHeaderValue(v); got != want {
				t.Errorf("ValidHeaderValue(%q) = %v, want %v", v, got, want)
			}
			if got := ValidHeaderValue([]byte(v)); got != want {
				t.Errorf("ValidHeaderValue([]byte(%q)) = %v, want %v", v, got, want)
			}
		}
	}
	for _, v := range []string{"", "text/html; charset=utf-8", "a\tb", " padded ", "caf\xe9", "\xff\x80", "日本", strings.Repeat("x", 8192)} {
		if !ValidHeaderValue(v) {
			t.Errorf("ValidHeaderValue(%q) = false, want true", v)
		}
	}
	for _, v := range []string{"a\r\nInjected: 1", "a\r\n b", "\x00", "a\x01b", "del\x7f", "esc\x1b[31m", "\x0b", "\x0c"} {
		if ValidHeaderValue(v) {
			t.Errorf("ValidHeaderValue(%q) = true, want false", v)
		}
	}
}

// TestValidHeaderName: a name is an RFC 9110 token, non-empty.
func TestValidHeaderName(t *testing.T) {
	const tchar = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for c := 0; c < 256; c++ {
		n := "X" + string([]byte{byte(c)})
		want := strings.IndexByte(tchar, byte(c)) >= 0
		if got := ValidHeaderName(n); got != want {
			t.Errorf("ValidHeaderName(%q) = %v, want %v", n, got, want)
		}
		if got := ValidHeaderName([]byte(n)); got != want {
			t.Errorf("ValidHeaderName([]byte(%q)) = %v, want %v", n, got, want)
		}
	}
	for _, n := range []string{"", "Bad Name", "X:Y", "X\r\nY", "caf\xe9", "X\t"} {
		if ValidHeaderName(n) {
			t.Errorf("ValidHeaderName(%q) = true, want false", n)
		}
	}
	for _, n := range []string{"Set-Cookie", "x-a", "X_Y", "~"} {
		if !ValidHeaderName(n) {
			t.Errorf("ValidHeaderName(%q) = false, want true", n)
		}
	}
}
