package abi

import (
	"context"
	"log/slog"

	"github.com/nylon-functions/nylon/protocol"
)

// OpOverhead is what each op counts toward the output limit on top of its
// bytes, so a guest cannot queue millions of empty ops under a byte budget.
const OpOverhead = 16

// maxKeptBuffer is the largest op buffer a State keeps between calls; a call
// that needed more gets fresh buffers next time, so one big answer does not
// pin memory in every idle instance.
const maxKeptBuffer = 256 << 10

// State is what the host functions of one instance work on. The pool owns it;
// exactly one call uses it at a time.
type State struct {
	function string
	logger   *slog.Logger // carries function=name
	limiter  *Limiter     // shared by every instance of the function

	// The current call; active is false outside nylon_handle (during
	// _initialize and nylon_phases), where reads are absent and writes refused.
	active    bool
	phase     protocol.Phase
	event     uint32
	inv       *protocol.Invocation
	reqID     protocol.RequestID
	maxOutput int

	// Output of the current call. Keys and values are appended to keys and
	// vals; ops refer to them by offset until Finish copies them out.
	outBytes int // ops only: the error text has room of its own
	ops      []opRef
	keys     []byte
	vals     []byte
	errText  []byte // at most MaxErrorText bytes, so Reset keeps it
	hasErr   bool

	scratch [64]byte // numbers and the request id are formatted here
}

type opRef struct {
	code           uint32
	num            int64
	keyOff, keyLen int
	valOff, valLen int
}

// NewState returns the State of one instance of function. logger receives
// the guest's log records and limiter rate-limits them.
func NewState(function string, logger *slog.Logger, limiter *Limiter) *State {
	return &State{function: function, logger: logger, limiter: limiter}
}

// Begin starts a call: reads answer from inv, writes are checked against
// phase and maxOutput bytes.
func (s *State) Begin(phase protocol.Phase, event uint32, inv *protocol.Invocation, reqID protocol.RequestID, maxOutput int) {
	s.active = true
	s.phase = phase
	s.event = event
	s.inv = inv
	s.reqID = reqID
	s.maxOutput = maxOutput
	s.outBytes = 0
	s.ops = s.ops[:0]
	s.keys = s.keys[:0]
	s.vals = s.vals[:0]
	s.errText = s.errText[:0]
	s.hasErr = false
}

// Finish returns the ops and error text the guest wrote during the call.
// The result is freshly allocated (nil when empty) and never aliases the
// State's buffers, so it stays valid after the instance is reused.
func (s *State) Finish() (ops []protocol.Op, errText string) {
	if s.hasErr {
		errText = string(s.errText)
	}
	if len(s.ops) == 0 {
		return nil, errText
	}
	// One allocation each for keys, values and the op slice, whatever the
	// number of ops.
	keys := string(s.keys)
	var vals []byte
	if len(s.vals) > 0 {
		vals = make([]byte, len(s.vals))
		copy(vals, s.vals)
	}
	ops = make([]protocol.Op, len(s.ops))
	for i, r := range s.ops {
		op := protocol.Op{Code: r.code, Num: r.num}
		if r.keyLen > 0 {
			op.Key = keys[r.keyOff : r.keyOff+r.keyLen]
		}
		if r.valLen > 0 {
			end := r.valOff + r.valLen
			op.Value = vals[r.valOff:end:end] // capped: an append by the caller cannot clobber the next op
		}
		ops[i] = op
	}
	return ops, errText
}

// Reset ends the call and drops the reference to its invocation, so an idle
// instance does not keep a request's body alive.
func (s *State) Reset() {
	s.active = false
	s.inv = nil
	s.reqID = protocol.RequestID{}
	if cap(s.keys) > maxKeptBuffer {
		s.keys = nil
	}
	if cap(s.vals) > maxKeptBuffer {
		s.vals = nil
	}
	if cap(s.ops) > maxKeptBuffer/OpOverhead {
		s.ops = nil
	}
}

type stateKey struct{}

// WithState returns ctx carrying s for the host functions called under it.
func WithState(ctx context.Context, s *State) context.Context {
	return context.WithValue(ctx, stateKey{}, s)
}

// stateFrom returns the State in ctx, or nil when the guest calls an import
// outside any call the host set up (which it then treats as absent/refused).
func stateFrom(ctx context.Context) *State {
	s, _ := ctx.Value(stateKey{}).(*State)
	return s
}
