// Package abi is the host side of the Nylon guest ABI v1: the three functions
// a guest imports from module "nylon" (read, write, log), the per-instance
// State they work on, and the guest output (stdout/stderr) plumbing.
//
// It lives under wasmhost/internal so wasmhost's public surface stays small;
// only wasmhost imports it. It imports protocol and wazero, nothing else from
// this project.
//
// The host functions find the State of the calling instance through the
// context.Context of the call (WithState): wasmhost puts it there for every
// nylon_handle call and for instantiation. A State is used by one call at a
// time, so it needs no locks, and it keeps its buffers between calls so the
// per-call path allocates only the result it hands back.
//
// Every pointer and length a guest passes is bounds-checked against its
// memory. A bad one panics with a *BoundsError, which wazero turns into a trap
// of that call only: the instance is then discarded by the pool and the node
// carries on.
//
// # Example
//
//	if err := abi.Register(ctx, runtime); err != nil { ... } // once per runtime
//	st := abi.NewState("auth", logger, abi.NewLimiter(50, 100))
//	st.Begin(protocol.PhaseRequestFilter, 0, &inv, reqID, 1<<20)
//	err := handle.CallWithStack(abi.WithState(ctx, st), stack)
//	ops, errText := st.Finish()
//	st.Reset()
package abi
