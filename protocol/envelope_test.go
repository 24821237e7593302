package protocol

import (
	"encoding/binary"
	"regexp"
	"strings"
	"testing"
	"time"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewRequestIDIsUUIDv7(t *testing.T) {
	before := time.Now().UnixMilli()
	id := NewRequestID()
	after := time.Now().UnixMilli()
	if !uuidRE.MatchString(id.String()) {
		t.Fatalf("%s is not a UUIDv7", id)
	}
	ms := int64(binary.BigEndian.Uint64(append([]byte{0, 0}, id[:6]...)))
	if ms < before || ms > after {
		t.Fatalf("timestamp %d outside [%d, %d]", ms, before, after)
	}
	if id.IsZero() {
		t.Fatal("new id is zero")
	}
	seen := map[RequestID]bool{}
	prev := id
	for range 1000 {
		n := NewRequestID()
		if seen[n] {
			t.Fatalf("duplicate id %s", n)
		}
		seen[n] = true
		// Ids sort by creation time at millisecond granularity.
		if string(n[:6]) < string(prev[:6]) {
			t.Fatalf("id %s sorts before earlier %s", n, prev)
		}
		prev = n
	}
}

func TestRequestIDStringParse(t *testing.T) {
	if s := goldenID.String(); s != "018f3a5c-7b2e-7a11-8c4d-1e2f3a4b5c6d" {
		t.Fatalf("String = %s", s)
	}
	for range 100 {
		id := NewRequestID()
		got, err := ParseRequestID(id.String())
		if err != nil || got != id {
			t.Fatalf("ParseRequestID(%s) = %s, %v", id, got, err)
		}
	}
	for _, s := range []string{
		"018f3a5c7b2e7a118c4d1e2f3a4b5c6d",
		"018F3A5C-7B2E-7A11-8C4D-1E2F3A4B5C6D",
	} {
		if got, err := ParseRequestID(s); err != nil || got != goldenID {
			t.Errorf("ParseRequestID(%q) = %s, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "018f3a5c", "018f3a5c-7b2e-7a11-8c4d-1e2f3a4b5c6d00", "zz8f3a5c-7b2e-7a11-8c4d-1e2f3a4b5c6d"} {
		if _, err := ParseRequestID(s); err == nil || !strings.Contains(err.Error(), "request id") {
			t.Errorf("ParseRequestID(%q) = %v, want an error naming the request id", s, err)
		}
	}
	var zero RequestID
	if !zero.IsZero() || zero.String() != "00000000-0000-0000-0000-000000000000" {
		t.Errorf("zero id: %s", zero)
	}
}

func TestAction(t *testing.T) {
	for a, s := range map[Action]string{ActionNext: "Next", ActionEnd: "End", ActionError: "Error"} {
		if a.String() != s {
			t.Errorf("%d.String() = %q", a, a.String())
		}
		if got, err := ParseAction(s); err != nil || got != a {
			t.Errorf("ParseAction(%q) = %d, %v", s, got, err)
		}
		if got, err := parseActionBytes([]byte(s)); err != nil || got != a {
			t.Errorf("parseActionBytes(%q) = %d, %v", s, got, err)
		}
	}
	if Action(7).String() != "Action(7)" {
		t.Errorf("Action(7) = %q", Action(7).String())
	}
	if _, err := ParseAction("next"); err == nil {
		t.Error("ParseAction accepts lower case")
	}
}
