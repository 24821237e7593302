package yield

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Error kinds. Every error Instrument returns wraps exactly one of them.
var (
	// ErrMalformed: the input is not a well-formed WebAssembly 1.0/2.0 binary (truncated, bad
	// LEB128, wrong section order, an index out of range, ...). Such a module would not compile.
	ErrMalformed = errors.New("malformed wasm")
	// ErrUnsupported: the input uses something outside wazero's default feature set
	// (api.CoreFeaturesV2) that the rewriter cannot instrument safely: threads, tail calls,
	// exception handling, typed function references, memory64, or an encoding wazero would
	// read differently from the specification.
	ErrUnsupported = errors.New("unsupported wasm")
	// ErrInvalidConfig: Config is unusable (empty import names, budget not positive).
	ErrInvalidConfig = errors.New("invalid yield config")
	// ErrLimit: the input is valid but exceeds a limit of Config: its tables declare more
	// initial entries than Config.MaxTableEntries.
	ErrLimit = errors.New("too large")
)

// Config names the import the instrumented module calls and its budget.
type Config struct {
	// Module and Name are the import added: (import "Module" "Name" (func (result i32))).
	// Both must be non-empty UTF-8, and the input must not import the same pair itself.
	Module, Name string
	// Budget is the initial value of the counter global: roughly how many instructions the guest
	// runs before it first calls the import (each yield point charges the instructions of the
	// function or loop body it starts). It must be > 0. Later stretches use whatever the import
	// returns; a result <= 0 makes the very next yield point call it again.
	Budget int32
	// MaxTableEntries bounds the tables the module defines, all together: their initial sizes
	// must add up to at most this many entries (else Instrument fails with ErrLimit), and each
	// table's maximum is lowered (or set, when it has none) so that they cannot grow past it
	// either; table.grow beyond a maximum returns -1. The headroom above the initial sizes goes
	// to the tables in index order, each taking what its own maximum allows. Imported tables
	// belong to another module and are not counted. 0 leaves tables as they are.
	MaxTableEntries uint32
}

// maxNameLen bounds Config.Module and Config.Name.
const maxNameLen = 1024

func (c Config) validate() error {
	switch {
	case c.Module == "" || len(c.Module) > maxNameLen || !utf8.ValidString(c.Module):
		return fmt.Errorf("%w: module %q: want 1 to 1024 bytes of UTF-8", ErrInvalidConfig, c.Module)
	case c.Name == "" || len(c.Name) > maxNameLen || !utf8.ValidString(c.Name):
		return fmt.Errorf("%w: name %q: want 1 to 1024 bytes of UTF-8", ErrInvalidConfig, c.Name)
	case c.Budget <= 0:
		return fmt.Errorf("%w: budget %d: want > 0", ErrInvalidConfig, c.Budget)
	}
	return nil
}

// Error reports where Instrument gave up on its input. Err wraps ErrMalformed, ErrUnsupported
// or ErrLimit.
type Error struct {
	Section string // section name ("header", "type", "import", "code", ...)
	Func    int    // index of the function in the original module, or -1 outside function bodies
	Offset  int    // byte offset in the input
	Err     error
}

func (e *Error) Error() string {
	if e.Func >= 0 {
		return fmt.Sprintf("yield: %s section: func[%d]: offset %#x: %v", e.Section, e.Func, e.Offset, e.Err)
	}
	return fmt.Sprintf("yield: %s section: offset %#x: %v", e.Section, e.Offset, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Instrument returns a copy of wasm (a WebAssembly 1.0 binary, with the features of wazero's
// api.CoreFeaturesV2) in which every function body starts with a yield point and so does the
// body of every loop instruction. A yield point is
//
//	global.get $c  i32.const 0  i32.gt_s
//	if
//	  global.get $c  i32.const <cost>  i32.sub  global.set $c
//	else
//	  call $yield  global.set $c
//	end
//
// where <cost> is the number of instructions in the function or loop body it starts (nested
// loops excluded), $c is a new mutable i32 global (appended after all existing globals,
// initialised to cfg.Budget, not exported) and $yield is a new function import (cfg.Module,
// cfg.Name) of a new type (func (result i32)) appended to the type section. The import is
// appended as the last import, so it takes function index = number of imported functions of
// the input, and every defined function's index moves up by one; every reference to one is
// rewritten. Every bulk memory and table instruction is preceded by a charge of $c for its
// length, which calls $yield first when it would spend the budget, and the defined tables are
// capped at cfg.MaxTableEntries. See the package documentation for the details.
//
// Instrument never panics, its work and memory are linear in len(wasm), and it does not modify
// wasm. It rejects (with an *Error wrapping ErrMalformed or ErrUnsupported) anything it cannot
// parse or instrument faithfully, including a module that names the global index or function
// import the rewrite adds, and (wrapping ErrLimit) tables over cfg.MaxTableEntries. Output is
// deterministic.
func Instrument(wasm []byte, cfg Config) ([]byte, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &rewriter{in: wasm, cfg: cfg, fn: -1}
	if err := r.scan(); err != nil {
		return nil, err
	}
	if err := r.rewrite(); err != nil {
		return nil, err
	}
	return r.out, nil
}
