package sdk

import (
	"strconv"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// Phase is the point of a request's life a handler runs at.
type Phase uint8

const (
	// PhaseEvents carries WebSocket events (open, message, close).
	PhaseEvents Phase = Phase(abi.PhaseEvent)
	// PhaseRequestFilter runs before the upstream (see RequestFilter).
	PhaseRequestFilter Phase = Phase(abi.PhaseRequestFilter)
	// PhaseResponseFilter runs on the upstream's status and headers (see
	// ResponseFilter).
	PhaseResponseFilter Phase = Phase(abi.PhaseResponseFilter)
	// PhaseResponseBodyFilter runs on each chunk of the body (see
	// ResponseBodyFilter).
	PhaseResponseBodyFilter Phase = Phase(abi.PhaseResponseBodyFilter)
	// PhaseLogging runs after the response was sent (see Logging).
	PhaseLogging Phase = Phase(abi.PhaseLogging)
)

// String returns the phase's name as used in subjects and config, e.g.
// "request_filter".
func (p Phase) String() string {
	switch p {
	case PhaseEvents:
		return "events"
	case PhaseRequestFilter:
		return "request_filter"
	case PhaseResponseFilter:
		return "response_filter"
	case PhaseResponseBodyFilter:
		return "response_body_filter"
	case PhaseLogging:
		return "logging"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}
