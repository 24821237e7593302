package wasmhost

import (
	"errors"
	"fmt"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost/internal/abi"
)

// Sentinels naming the kind of a failure; test with errors.Is. Errors carry
// the function's name and the details around them.
var (
	// ErrNotWasm: the bytes are not a WebAssembly 1.0 binary (magic or version).
	ErrNotWasm = errors.New("not a wasm module")
	// ErrCompile: wazero could not decode, validate or compile the module.
	ErrCompile = errors.New("compile")
	// ErrABI: the module does not follow guest ABI v1 (exports, imports,
	// signatures, phases, initialisation, or an out-of-range action).
	ErrABI = errors.New("guest abi v1")
	// ErrInvalidConfig: a Config or Limits value is out of range.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrTimeout: a call (or _initialize) was stopped at its deadline. The
	// instance is discarded.
	ErrTimeout = errors.New("call timed out")
	// ErrMemoryLimit: the guest tried to grow its memory past the function's
	// limit (or declares more initial memory than the limit, or more table
	// entries than the host's cap of 2^20). The instance is discarded.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrInputTooLarge: the invocation is bigger than the function's MaxInput.
	ErrInputTooLarge = errors.New("input too large")
	// ErrUnsupportedPhase: the module does not handle the phase (or the event
	// does not fit the phase).
	ErrUnsupportedPhase = errors.New("unsupported phase")
	// ErrPoolExhausted: the caller's context ended while it waited for a free
	// instance; the error also wraps the context's error.
	ErrPoolExhausted = errors.New("instance pool exhausted")
	// ErrPoolClosed: the module was closed.
	ErrPoolClosed = errors.New("instance pool closed")
	// ErrHostClosed: the host was closed.
	ErrHostClosed = errors.New("wasm host closed")
	// ErrOutOfBounds: the guest passed a host function a pointer and length
	// outside its memory. It arrives wrapped in a *TrapError.
	ErrOutOfBounds = abi.ErrOutOfBounds
)

// TrapError is a call that failed inside the guest: a wasm trap
// (unreachable, out-of-bounds access, a host function refusing a bad
// pointer...) or the guest exiting (a Go guest's panic ends in
// proc_exit(2), seen as a *sys.ExitError). The instance is discarded.
type TrapError struct {
	Function string
	Phase    protocol.Phase
	Err      error // the wazero error, e.g. *sys.ExitError
}

func (e *TrapError) Error() string {
	return fmt.Sprintf("function[%s] phase[%s]: trap: %v", e.Function, e.Phase, e.Err)
}

func (e *TrapError) Unwrap() error { return e.Err }
