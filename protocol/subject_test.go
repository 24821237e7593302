package protocol

import (
	"strings"
	"testing"
)

func TestSubjectBuilders(t *testing.T) {
	p := Prefix(DefaultEnv)
	for _, tc := range []struct{ got, want string }{
		{p, "nylon.dev"},
		{PhaseSubject(p, "auth", PhaseRequestFilter), "nylon.dev.auth.request_filter"},
		{PhaseSubject(p, "auth", PhaseLogging), "nylon.dev.auth.logging"},
		{PhaseSubject(p, "chat", PhaseEvent), "nylon.dev.ws.chat.events"},
		{EventsSubject(p, "chat"), "nylon.dev.ws.chat.events"},
		{RoomSubject(p, "lobby"), "nylon.dev.ws.room.lobby"},
		{DLQSubject(p, "auth", PhaseResponseFilter), "nylon.dev.dlq.auth.response_filter"},
		{DLQWildcard(p), "nylon.dev.dlq.>"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, ok := range []string{"nylon.dev", "a", "corp.nylon.prod-1"} {
		if err := ValidatePrefix(ok); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "a.*", "a.>", "a b", "a.\tb"} {
		if err := ValidatePrefix(bad); err == nil {
			t.Errorf("ValidatePrefix(%q) accepted", bad)
		}
	}
}

// subjectCases are (prefix, subject, target or error) rows; the fuzz target
// is seeded from them.
var subjectCases = []struct {
	prefix, subject string
	want            SubjectTarget
	err             bool
}{
	{"nylon.dev", "nylon.dev.auth.request_filter", SubjectTarget{Function: "auth", Phase: PhaseRequestFilter}, false},
	{"nylon.dev", "nylon.dev.auth.response_body_filter", SubjectTarget{Function: "auth", Phase: PhaseResponseBodyFilter}, false},
	{"nylon.dev", "nylon.dev.ws.chat.events", SubjectTarget{Function: "chat", Phase: PhaseEvent}, false},
	{"nylon.dev", "nylon.dev.ws.room.lobby", SubjectTarget{Room: "lobby"}, false},
	{"nylon.dev", "nylon.dev.dlq.auth.logging", SubjectTarget{Function: "auth", Phase: PhaseLogging, DLQ: true}, false},
	{"a.b.c", "a.b.c.fn-1.response_filter", SubjectTarget{Function: "fn-1", Phase: PhaseResponseFilter}, false},
	{"nylon.dev", "nylon.prod.auth.request_filter", SubjectTarget{}, true},
	{"nylon.dev", "nylon.devx.auth.request_filter", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.auth", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.auth.events", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.auth.nope", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.Auth.request_filter", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.ws.request_filter", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.ws.Chat.events", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.ws.room.a*", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.dlq.chat.events", SubjectTarget{Function: "chat", Phase: PhaseEvent, DLQ: true}, false},
	{"nylon.dev", "nylon.dev.auth.events", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.dlq.auth", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.a.b.c.d", SubjectTarget{}, true},
	{"nylon.dev", "nylon.dev.auth.request_filter.x", SubjectTarget{}, true},
}

func TestParseSubject(t *testing.T) {
	for _, tc := range subjectCases {
		got, err := ParseSubject(tc.prefix, tc.subject)
		if tc.err {
			if err == nil {
				t.Errorf("ParseSubject(%q, %q) = %+v, want error", tc.prefix, tc.subject, got)
			} else if !strings.Contains(err.Error(), tc.subject) {
				t.Errorf("error %q does not name the subject", err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSubject(%q, %q) = %+v, %v; want %+v", tc.prefix, tc.subject, got, err, tc.want)
		}
	}
}

// TestParseSubjectInvertsBuilders: every subject a builder makes from valid
// parts parses back to those parts.
func TestParseSubjectInvertsBuilders(t *testing.T) {
	for _, prefix := range []string{"nylon.dev", "x", "corp.nylon.prod"} {
		for _, fn := range []string{"auth", "a", "fn_1-x", "events", "request_filter", strings.Repeat("z", 63)} {
			for _, p := range HTTPPhases {
				checkInverse(t, prefix, PhaseSubject(prefix, fn, p), SubjectTarget{Function: fn, Phase: p})
				checkInverse(t, prefix, DLQSubject(prefix, fn, p), SubjectTarget{Function: fn, Phase: p, DLQ: true})
			}
			checkInverse(t, prefix, EventsSubject(prefix, fn), SubjectTarget{Function: fn, Phase: PhaseEvent})
		}
		for _, room := range []string{"lobby", "events", "room", "ws", "A-1:x"} {
			checkInverse(t, prefix, RoomSubject(prefix, room), SubjectTarget{Room: room})
		}
	}
}

func checkInverse(t testing.TB, prefix, subject string, want SubjectTarget) {
	t.Helper()
	got, err := ParseSubject(prefix, subject)
	if err != nil || got != want {
		t.Fatalf("ParseSubject(%q, %q) = %+v, %v; want %+v", prefix, subject, got, err, want)
	}
}

// FuzzParseSubject checks that ParseSubject never panics, that whatever it
// accepts rebuilds to the same subject, and that it inverts the builders
// for any valid function, room and prefix.
func FuzzParseSubject(f *testing.F) {
	for _, tc := range subjectCases {
		f.Add(tc.prefix, tc.subject, "auth", "lobby", uint8(1))
	}
	f.Add("nylon.dev", "nylon.dev.ws.room.events", "room", "events", uint8(0))
	f.Fuzz(func(t *testing.T, prefix, subject, fn, room string, phase uint8) {
		if got, err := ParseSubject(prefix, subject); err == nil {
			var rebuilt string
			switch {
			case got.Room != "":
				rebuilt = RoomSubject(prefix, got.Room)
			case got.DLQ:
				rebuilt = DLQSubject(prefix, got.Function, got.Phase)
			default:
				rebuilt = PhaseSubject(prefix, got.Function, got.Phase)
			}
			if rebuilt != subject {
				t.Fatalf("ParseSubject(%q, %q) = %+v, which rebuilds to %q", prefix, subject, got, rebuilt)
			}
		}
		if ValidatePrefix(prefix) != nil {
			return
		}
		if ValidateRoom(room) == nil {
			checkInverse(t, prefix, RoomSubject(prefix, room), SubjectTarget{Room: room})
		}
		if ValidateName(fn) != nil {
			return
		}
		p := Phase(phase % 5)
		checkInverse(t, prefix, PhaseSubject(prefix, fn, p), SubjectTarget{Function: fn, Phase: p})
		checkInverse(t, prefix, DLQSubject(prefix, fn, p), SubjectTarget{Function: fn, Phase: p, DLQ: true})
	})
}
