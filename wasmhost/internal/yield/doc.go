// Package yield rewrites a WebAssembly module so that the running guest calls a host function
// now and then: gas metering, as wasm-instrument's inject_gas_counter does it, used to stop
// calls that overrun their deadline. It imports only the standard library.
//
// # Why
//
// wazero can stop a running guest itself (RuntimeConfig.WithCloseOnContextDone), but its
// compiler does so by calling, at every loop header, through a trampoline that leaves machine
// code for Go to check whether the module was closed (ExitCodeCheckModuleExitCode in
// internal/engine/wazevo), and it watches each call's context with a goroutine. Go-compiled
// guests have a loop in nearly every function, so that halves their speed (the hello example:
// 11 µs per call with it, 4.9 µs without). BenchmarkLoop shows the difference on a 12-instruction
// loop: about 50 ns per iteration with WithCloseOnContextDone, 1.4 ns plain, 2.3 ns instrumented.
//
// There is a second reason. The Go scheduler cannot preempt the machine code wazero generates,
// so a guest spinning in a loop that never calls the host holds up every stop-the-world phase
// of the garbage collector until it returns. The yield import is Go code: each call is a point
// where the goroutine can be preempted, so a spinning guest delays the collector by at most one
// budget's worth of work.
//
// # What the rewrite does
//
// Instrument adds a mutable i32 global $c (the counter, initialised to Config.Budget) and a
// function import $yield (Config.Module, Config.Name) of type (func (result i32)), and puts a
// yield point at the start of every function body and of every loop body:
//
//	global.get $c  i32.const 0  i32.gt_s
//	if
//	  global.get $c  i32.const <cost>  i32.sub  global.set $c
//	else
//	  call $yield  global.set $c
//	end
//
// While the counter is positive, a yield point costs one load, compare, branch, subtract and
// store. When it is not, the guest calls $yield, whose result is the next budget; the host
// function checks the call's deadline or cancellation and panics to stop it (wazero turns a
// panic in a host function into the call's error). A result <= 0 makes the next yield point call
// again. The sequence is stack-neutral and its if has the empty block type, so it is valid at the
// start of any function or loop body, including loops with block parameters.
//
// <cost> is the number of instructions of the region the yield point starts (the function or
// loop body, not counting nested loop bodies, which have their own), so the budget measures
// work rather than loop iterations: a loop with a long body pays more per iteration. Structured
// control flow only jumps backwards to the start of a loop, so no instruction runs again
// without its region's yield point running first, and $yield is called at least once per
// Budget instructions executed, plus one region. (Host calls do an unbounded amount of work per
// instruction; the host bounds its own functions.)
//
// # Bulk instructions
//
// memory.fill, memory.copy, memory.init, table.fill, table.copy and table.init do work in
// proportion to their length operand n: one of them can move gigabytes. So each is charged by
// n, taken from the stack before it runs (bulk.go has the sequence): one unit per 2 bytes of
// memory, 4 per table entry (8 bytes), the rates BenchmarkBulk measured against the instruction
// loop the budget counts. The charge comes with its own check: when the budget is spent, or this
// instruction would spend it, $yield is called before the instruction runs, so a loop of huge
// fills (or a long straight run of them) stops within one instruction of its deadline. The
// arithmetic cannot wrap: the charge is below 2^31 and is only subtracted from a positive
// counter. A function with such an instruction gets one scratch i32 local, declared after all
// its other locals, so no local index moves and the name section's local names stay right.
//
// # Tables
//
// wazero lets a table grow to 2^32-1 entries of 8 bytes, host memory outside any linear memory
// limit. With Config.MaxTableEntries set, the tables the module defines may hold that many
// entries together: a module declaring more initial entries is rejected with ErrLimit, and every
// table's maximum is set (or lowered) so that table.grow past the cap returns -1. The headroom
// goes to the tables in index order, each up to its own maximum; modules usually have one table.
//
// # Index shifting
//
// Imported functions come first in the function index space, so the new import, appended as
// the last import, takes index = the number of imported functions, and every defined function's
// index moves up by one. Every function index is rewritten: call and ref.func in code; ref.func
// in constant expressions (global initialisers, element segment items and offsets, data
// offsets); function exports; the start function; the function indices of element segments of
// all eight forms; and the function, local and label name maps of the "name" custom section.
// Other custom sections are copied unchanged, except DWARF (".debug_*"), which is dropped: it
// addresses code by byte offset, which the rewrite moves, so it would make wazero print wrong
// source lines. The new type is appended to the type section
// and the new global after all globals, so no other index moves. Sections the input lacks (type,
// import, global) are created in their place in the section order.
//
// # Why indices past the end are rejected
//
// The counter's index is the input's global count. A global.get or global.set of that index,
// or an export of it, or a global.get of it in a constant expression, makes the input invalid,
// but after the rewrite the same bytes would be valid and name the counter: the guest could
// refill its own budget and never be stopped. So Instrument rejects every global index >= the
// input's global count, every function index >= its function count (after the shift none of
// them could name the import anyway) and every type index >= its type count, with ErrMalformed.
// A module that imports (Config.Module, Config.Name) itself is rejected as ErrUnsupported.
//
// # Agreement with wazero
//
// The rewriter must find every instruction boundary exactly where wazero will, or bytes it
// copies as an immediate could be instructions to wazero (a hidden global.set $c). So it decodes
// every instruction of api.CoreFeaturesV2 (MVP, sign extension, non-trapping float-to-int, bulk
// memory, reference types, multi-value, SIMD) the way wazero's validator does
// (internal/wasm/func_validation.go), its LEB128 readers accept exactly what wazero's do, and it
// rejects as ErrUnsupported what the two could read differently: wazero reads a SIMD opcode as
// one byte where the specification has a LEB128, so only the canonical encodings (one byte
// below 0x80; op|0x80 then 0x01 above, which wazero reads as the opcode and a nop) are
// accepted. Everything outside V2 is ErrUnsupported too: threads (0xFE), tail calls, exception
// handling (instructions, tag section and imports), typed function references, memory64, shared
// memories, multi-memory, extended constant expressions, table initialisers.
//
// # Hostile input
//
// Instrument never panics and does not modify its input. Its work and memory are linear in the
// input's size: every count is checked against the bytes left before it is used, nesting is
// tracked without recursion, and the output is at most a constant factor larger than the input.
// It also shields wazero's decoder, which allocates from claimed counts before reading them: a
// function may declare at most 50000 locals (wazero would allocate 4 GiB for a few bytes
// declaring 2^32-1), and the name section is rewritten well-formed or dropped (it is only
// debugging information, so a malformed one is dropped rather than failing the module). Errors
// are *Error values naming the section, the function index and the byte offset.
//
// # Example
//
//	out, err := yield.Instrument(wasm, yield.Config{Module: "nylon_sys", Name: "yield", Budget: 1 << 20})
//	if err != nil {
//		return err // wraps yield.ErrMalformed or yield.ErrUnsupported
//	}
//	_, err = rt.NewHostModuleBuilder("nylon_sys").NewFunctionBuilder().
//		WithFunc(func(ctx context.Context) int32 {
//			if err := ctx.Err(); err != nil {
//				panic(err) // ends the guest's call with this error
//			}
//			return 1 << 20 // the next budget
//		}).
//		Export("yield").Instantiate(ctx)
//	...
//	compiled, err := rt.CompileModule(ctx, out)
package yield
