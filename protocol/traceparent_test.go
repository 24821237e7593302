package protocol

import (
	"strings"
	"testing"
)

func TestValidTraceparent(t *testing.T) {
	valid := []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", // a newer version may append fields
	}
	invalid := []string{
		"",
		"garbage",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // uppercase
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // forbidden version
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // version 00 has no extra fields
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // extra fields need a dash
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
	}
	for _, s := range valid {
		if !ValidTraceparent(s) {
			t.Errorf("ValidTraceparent(%q) = false", s)
		}
	}
	for _, s := range invalid {
		if ValidTraceparent(s) {
			t.Errorf("ValidTraceparent(%q) = true", s)
		}
	}
}

func TestTrace(t *testing.T) {
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tc := ContinueTrace(parent)
	a, b := tc.Next(), tc.Next()
	if !ValidTraceparent(a) || !ValidTraceparent(b) {
		t.Fatalf("invalid traceparents %q %q", a, b)
	}
	if a[:36] != parent[:36] || a[52:] != parent[52:] || a == b {
		t.Fatalf("want the parent's trace id and flags with new span ids: %q %q", a, b)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01", strings.ToUpper(parent), "01" + parent[2:] + "x"} {
		if ValidTraceparent(bad) {
			t.Errorf("ValidTraceparent(%q) = true", bad)
		}
		fresh := ContinueTrace(bad)
		got := fresh.Next()
		if !ValidTraceparent(got) || got[53:] != "00" { // fresh traces are not sampled
			t.Errorf("fresh trace from %q: %q", bad, got)
		}
	}
	x, y := ContinueTrace(""), ContinueTrace("")
	if x.Next()[3:35] == y.Next()[3:35] {
		t.Errorf("fresh trace ids repeat")
	}
}
