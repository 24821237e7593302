package protocol

import "fmt"

// Phase is a plugin phase, numbered as on the wire (PluginRequest.phase).
type Phase uint8

const (
	// PhaseEvent (0) carries in-session events: WebSocket open, message, close.
	PhaseEvent              Phase = 0
	PhaseRequestFilter      Phase = 1
	PhaseResponseFilter     Phase = 2
	PhaseResponseBodyFilter Phase = 3
	PhaseLogging            Phase = 4
)

// HTTPPhases lists the HTTP phases in the order a request runs them.
var HTTPPhases = [...]Phase{PhaseRequestFilter, PhaseResponseFilter, PhaseResponseBodyFilter, PhaseLogging}

var phaseNames = [...]string{
	PhaseEvent:              "events",
	PhaseRequestFilter:      "request_filter",
	PhaseResponseFilter:     "response_filter",
	PhaseResponseBodyFilter: "response_body_filter",
	PhaseLogging:            "logging",
}

// String returns the phase's subject token, e.g. "request_filter".
func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Valid reports whether p is a phase this protocol version knows.
func (p Phase) Valid() bool { return int(p) < len(phaseNames) }

// ParsePhase maps a subject token or config key ("request_filter") to its Phase.
func ParsePhase(s string) (Phase, error) {
	for i, n := range phaseNames {
		if n == s {
			return Phase(i), nil
		}
	}
	return 0, fmt.Errorf("unknown phase %q (want request_filter, response_filter, response_body_filter, logging or events)", s)
}

// PhaseSet is the bitmask a module's nylon_phases export returns: bit 1..4 =
// request_filter..logging, bit 5 = WebSocket events.
type PhaseSet uint32

// PhaseSetWebSocket is the bit of a module that handles WebSocket events.
const PhaseSetWebSocket PhaseSet = 1 << 5

// phaseSetKnown is every bit defined by ABI v1.
const phaseSetKnown = 1<<PhaseRequestFilter | 1<<PhaseResponseFilter | 1<<PhaseResponseBodyFilter | 1<<PhaseLogging | PhaseSetWebSocket

// Has reports whether the set contains HTTP phase p (or, for PhaseEvent, WebSocket events).
func (s PhaseSet) Has(p Phase) bool {
	if p == PhaseEvent {
		return s&PhaseSetWebSocket != 0
	}
	return p.Valid() && s&(1<<p) != 0
}

// WebSocket reports whether the module handles WebSocket events.
func (s PhaseSet) WebSocket() bool { return s&PhaseSetWebSocket != 0 }

// Valid reports whether s has at least one bit and only bits ABI v1 defines.
func (s PhaseSet) Valid() bool { return s != 0 && s&^phaseSetKnown == 0 }

// Phases lists the HTTP phases in s in run order.
func (s PhaseSet) Phases() []Phase {
	var out []Phase
	for _, p := range HTTPPhases {
		if s.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// Names lists the phase names in s, "events" last for WebSocket modules.
func (s PhaseSet) Names() []string {
	var out []string
	for _, p := range s.Phases() {
		out = append(out, p.String())
	}
	if s.WebSocket() {
		out = append(out, PhaseEvent.String())
	}
	return out
}

// PhaseSetOf builds a set from phases.
func PhaseSetOf(phases ...Phase) PhaseSet {
	var s PhaseSet
	for _, p := range phases {
		if p == PhaseEvent {
			s |= PhaseSetWebSocket
		} else {
			s |= 1 << p
		}
	}
	return s
}
