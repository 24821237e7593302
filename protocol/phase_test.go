package protocol

import (
	"reflect"
	"testing"
)

func TestPhaseNames(t *testing.T) {
	for p, name := range map[Phase]string{
		PhaseEvent:              "events",
		PhaseRequestFilter:      "request_filter",
		PhaseResponseFilter:     "response_filter",
		PhaseResponseBodyFilter: "response_body_filter",
		PhaseLogging:            "logging",
	} {
		if p.String() != name || !p.Valid() {
			t.Errorf("Phase(%d): String %q Valid %v", p, p.String(), p.Valid())
		}
		got, err := ParsePhase(name)
		if err != nil || got != p {
			t.Errorf("ParsePhase(%q) = %d, %v", name, got, err)
		}
	}
	if Phase(5).Valid() || Phase(5).String() != "phase(5)" || Phase(255).Valid() {
		t.Errorf("Phase(5): %q valid=%v", Phase(5).String(), Phase(5).Valid())
	}
	for _, bad := range []string{"", "Request_Filter", "request-filter", "none", "5"} {
		if _, err := ParsePhase(bad); err == nil {
			t.Errorf("ParsePhase(%q) succeeded", bad)
		}
	}
	if !reflect.DeepEqual(HTTPPhases, [...]Phase{1, 2, 3, 4}) {
		t.Errorf("HTTPPhases = %v", HTTPPhases)
	}
}

func TestPhaseSet(t *testing.T) {
	all := PhaseSetOf(PhaseLogging, PhaseRequestFilter, PhaseEvent, PhaseResponseBodyFilter, PhaseResponseFilter)
	if all != 0b111110 {
		t.Fatalf("PhaseSetOf(all) = %b", all)
	}
	for _, tc := range []struct {
		set    PhaseSet
		valid  bool
		ws     bool
		phases []Phase
		names  []string
	}{
		{0, false, false, nil, nil},
		{1 << 1, true, false, []Phase{PhaseRequestFilter}, []string{"request_filter"}},
		{PhaseSetWebSocket, true, true, nil, []string{"events"}},
		{all, true, true, []Phase{1, 2, 3, 4}, []string{"request_filter", "response_filter", "response_body_filter", "logging", "events"}},
		{1 << 4, true, false, []Phase{PhaseLogging}, []string{"logging"}},
		{1, false, false, nil, nil},                                         // bit 0 is not a phase
		{1<<1 | 1<<6, false, false, []Phase{1}, []string{"request_filter"}}, // unknown bit 6
	} {
		if tc.set.Valid() != tc.valid || tc.set.WebSocket() != tc.ws {
			t.Errorf("%b: Valid %v WebSocket %v", tc.set, tc.set.Valid(), tc.set.WebSocket())
		}
		if !reflect.DeepEqual(tc.set.Phases(), tc.phases) || !reflect.DeepEqual(tc.set.Names(), tc.names) {
			t.Errorf("%b: Phases %v Names %v", tc.set, tc.set.Phases(), tc.set.Names())
		}
		if tc.set.Has(PhaseEvent) != tc.ws {
			t.Errorf("%b: Has(events) = %v", tc.set, tc.set.Has(PhaseEvent))
		}
	}
	if PhaseSet(0xffffffff).Has(Phase(40)) {
		t.Error("Has accepts an unknown phase")
	}
}
