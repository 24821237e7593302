package wasmhost

import (
	"context"
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
// iteration and, when it runs out, call the host function
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
	// (yield points weighted by their size). A yield costs about as much as
	// a host read; a budget this size keeps that under 1% of any loop while
	// bounding how long a call runs past its deadline to well under a
	// millisecond.
	yieldBudget = 1 << 20
)

// instrument rewrites wasm (see above); the error wraps ErrCompile for a
// module the rewriter cannot read.
func instrument(wasm []byte) ([]byte, error) {
	out, err := yield.Instrument(wasm, yield.Config{Module: yieldModule, Name: yieldName, Budget: yieldBudget})
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
