package protocol

import (
	"fmt"
	"strings"
)

// DefaultEnv is the environment used when none is configured.
const DefaultEnv = "dev"

// Prefix returns the default subject prefix for env: "nylon.{env}".
func Prefix(env string) string { return "nylon." + env }

// PhaseSubject is the request/reply subject of a function's phase:
// "{prefix}.{function}.{phase}". PhaseEvent maps to EventsSubject.
func PhaseSubject(prefix, function string, p Phase) string {
	if p == PhaseEvent {
		return EventsSubject(prefix, function)
	}
	return prefix + "." + function + "." + p.String()
}

// EventsSubject is the request/reply subject of a function's WebSocket
// events: "{prefix}.ws.{function}.events".
func EventsSubject(prefix, function string) string {
	return prefix + ".ws." + function + ".events"
}

// RoomSubject is the pub/sub subject of a WebSocket room: "{prefix}.ws.room.{room}".
func RoomSubject(prefix, room string) string { return prefix + ".ws.room." + room }

// DLQSubject is where a caller publishes a request after its last failed
// attempt: "{prefix}.dlq.{function}.{phase}". WebSocket events (PhaseEvent)
// are dead-lettered as "{prefix}.dlq.{function}.events".
func DLQSubject(prefix, function string, p Phase) string {
	return prefix + ".dlq." + function + "." + p.String()
}

// DLQWildcard matches every dead letter under prefix.
func DLQWildcard(prefix string) string { return prefix + ".dlq.>" }

// ValidatePrefix checks a configured subject prefix: one or more dot-separated
// tokens without wildcards or whitespace.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("subject prefix: empty")
	}
	for _, tok := range strings.Split(prefix, ".") {
		if tok == "" {
			return fmt.Errorf("subject prefix %q: empty token", prefix)
		}
		if strings.ContainsAny(tok, "*> \t\r\n") {
			return fmt.Errorf("subject prefix %q: token %q has a wildcard or whitespace", prefix, tok)
		}
	}
	return nil
}

// SubjectTarget is what ParseSubject found in a subject.
type SubjectTarget struct {
	Function string
	Phase    Phase // PhaseEvent for WebSocket events
	Room     string
	DLQ      bool
}

// ParseSubject splits a subject under prefix into its function and phase (or
// room, or dead-letter target). It is the inverse of the subject builders.
func ParseSubject(prefix, subject string) (SubjectTarget, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return SubjectTarget{}, fmt.Errorf("subject %q: not under prefix %q", subject, prefix)
	}
	toks := strings.Split(rest, ".")
	switch {
	case len(toks) == 3 && toks[0] == "ws" && toks[1] == "room":
		if err := ValidateRoom(toks[2]); err != nil {
			return SubjectTarget{}, fmt.Errorf("subject %q: %w", subject, err)
		}
		return SubjectTarget{Room: toks[2]}, nil
	case len(toks) == 3 && toks[0] == "ws" && toks[2] == "events":
		if err := ValidateName(toks[1]); err != nil {
			return SubjectTarget{}, fmt.Errorf("subject %q: %w", subject, err)
		}
		return SubjectTarget{Function: toks[1], Phase: PhaseEvent}, nil
	case len(toks) == 3 && toks[0] == "dlq":
		t, err := parseFunctionPhase(subject, toks[1], toks[2], true)
		if err != nil {
			return SubjectTarget{}, err
		}
		t.DLQ = true
		return t, nil
	case len(toks) == 2:
		return parseFunctionPhase(subject, toks[0], toks[1], false)
	}
	return SubjectTarget{}, fmt.Errorf("subject %q: unknown layout under %q", subject, prefix)
}

// parseFunctionPhase reads "{function}.{phase}"; "events" is a phase token
// only under dlq (WebSocket events have their own "ws.{function}.events").
func parseFunctionPhase(subject, fn, phase string, allowEvents bool) (SubjectTarget, error) {
	if err := ValidateName(fn); err != nil {
		return SubjectTarget{}, fmt.Errorf("subject %q: %w", subject, err)
	}
	p, err := ParsePhase(phase)
	if err != nil || (p == PhaseEvent && !allowEvents) {
		return SubjectTarget{}, fmt.Errorf("subject %q: unknown phase %q", subject, phase)
	}
	return SubjectTarget{Function: fn, Phase: p}, nil
}
