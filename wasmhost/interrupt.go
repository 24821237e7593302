package wasmhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/nylon-functions/nylon/wasmhost/internal/yield"
)

// How a call is stopped.
//
// wazero can stop a running guest itself (RuntimeConfig.WithCloseOnContextDone),
// but it does so by leaving machine code for Go at every loop iteration to
// check the module, and by starting a goroutine per call to watch the
// context. Go guests loop in nearly every function, so that check alone
// doubled the cost of a small handler. Instead, Compile rewrites each module
// (internal/yield) to count down a budget at every function entry and loop
// iteration, and before every bulk memory or table instruction (fill, copy,
// init) by its length, and, when it runs out, call the host function
// nylon_sys.yield. That function, Go code, is where a call notices that its
// instance's context was cancelled — by the deadline timer, the caller, or
// Close — and stops by panicking, which wazero turns into the call's error.
// Being Go, it is also where the scheduler can preempt a long call, so a
// spinning guest never holds up the garbage collector for longer than one
// budget.
const (
	yieldModule = "nylon_sys"
	yieldName   = "yield"

	// yieldBudget is the work between two yields, in the rewriter's units
	// (instructions; a bulk instruction counts one unit per 2 bytes or 4 per
	// table entry, so 2^20 is also about 2 MiB filled or copied). A yield
	// costs about as much as a host read; a budget this size keeps that under
	// 1% of any loop while bounding how long a call runs past its deadline to
	// well under a millisecond, plus at most one bulk instruction (a fill of
	// the whole memory: milliseconds for the default 128 MiB).
	yieldBudget = 1 << 20

	// maxTableEntries caps the entries of a module's tables, initial and
	// grown, all tables together. wazero lets a table grow to 2^32-1 entries
	// of 8 bytes, host memory outside the function's memory limit: a
	// handler growing one by 2^26 entries per call took a node from 0.5 to
	// 6 GB in four calls. 2^20 entries is 8 MiB per instance (wazero's grow
	// briefly needs up to three times that); real guests need far fewer (a
	// Go guest's single table has one entry per function, a few thousand to
	// tens of thousands; LLVM's one per address-taken function), and the
	// rewriter gives a table without a maximum all the headroom it can, so
	// growable tables keep working up to the cap. It is a fixed number rather
	// than a share of Limits.MemoryMB so that it is the same for every
	// function and every node, as the module was validated.
	maxTableEntries = 1 << 20
)

// instrument rewrites wasm (see above). The error wraps ErrMemoryLimit for
// tables over maxTableEntries and ErrCompile for a module the rewriter
// cannot read.
func instrument(wasm []byte) ([]byte, error) {
	out, err := yield.Instrument(wasm, yield.Config{
		Module: yieldModule, Name: yieldName, Budget: yieldBudget, MaxTableEntries: maxTableEntries,
	})
	if errors.Is(err, yield.ErrLimit) {
		return nil, fmt.Errorf("%w: %w", ErrMemoryLimit, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCompile, err)
	}
	return out, nil
}

// registerYield instantiates the host module the rewritten guests import.
func registerYield(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(yieldModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostYield), nil, []api.ValueType{api.ValueTypeI32}).
		Export(yieldName).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("host module %q: %w", yieldModule, err)
	}
	return nil
}

// hostYield implements nylon_sys.yield() -> i32: it stops the call if its
// context is done and otherwise grants the next budget.
func hostYield(ctx context.Context, _ api.Module, stack []uint64) {
	if done := ctx.Done(); done != nil {
		select {
		case <-done:
			stopCall(ctx)
		default:
		}
	}
	stack[0] = api.EncodeI32(yieldBudget)
}

// stopCall ends the running guest call whose context, ctx, is done: wazero
// turns a panic in a host function into that call's error. The caller
// discards the instance.
func stopCall(ctx context.Context) {
	panic(fmt.Errorf("wasmhost: call stopped: %w", context.Cause(ctx)))
}
