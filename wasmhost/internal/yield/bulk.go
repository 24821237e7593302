package yield

// Bulk memory and table instructions (memory.fill, memory.copy, memory.init, table.fill,
// table.copy, table.init) are one instruction each but do work in proportion to their length
// operand n, up to 4 GiB of memory or 2^32 table entries in one go. Counting them as one
// instruction would let a loop of them run for minutes between yields (the loop's yield point
// charges a few units per iteration, each iteration moving hundreds of megabytes), and a long
// straight run of them would never reach a yield point at all. So each is preceded by a charge
// for n, taken from the stack:
//
//	local.tee $s                                ;; n stays on the stack for the instruction
//	global.get $c  <cost of $s>  i32.sub
//	local.tee $s                                ;; $s = c - cost
//	i32.const 0  i32.gt_s  global.get $c  i32.const 0  i32.gt_s  i32.and
//	if                                          ;; c > 0 and c - cost > 0
//	  local.get $s  global.set $c
//	else                                        ;; the budget is (or would be) spent
//	  call $yield  global.set $c
//	end
//
// so the host gets control before any instruction that would overspend the budget: a loop of
// huge fills is stopped within one fill of its deadline. The instruction that makes the call is
// charged to the stretch before it, not to the new budget. $s is a scratch i32 local added to
// every function that has such an instruction, after its other locals so that no index moves.
//
// # Overflow
//
// cost is always in [0, 2^31): n>>1 for memory, min(n, 2^29-1)<<2 for tables. If c > 0, c - cost
// is in (-2^31, 2^31) and cannot wrap. If c <= 0 the budget is spent whatever the difference
// (which may wrap to a positive value) says, so the test of c > 0 as well keeps a negative
// counter from wrapping into a large budget.
//
// # Rates
//
// The budget counts instructions of code like BenchmarkLoop's loop (BenchmarkLoop/plain: 0.08 to
// 0.17 ns each, depending on the load of the shared 2-core machine it ran on). BenchmarkBulk,
// run alongside, put one byte of memory.fill or memory.copy at 0.015 to 0.04 ns in cache
// (16 KiB) and 0.1 to 0.2 ns from memory (16 MiB): 0.15 to 2 loop instructions. One unit per 2
// bytes is in the middle of that range, and it is the finest rate that keeps the cost of any
// memory length below 2^31. Table instructions move 8-byte entries through the same memmove,
// 0.2 to 0.7 ns per entry (1 to 8 instructions): 4 units per entry, the same rate per byte.
// With wasmhost's budget of 2^20 units a guest yields at least every 2 MiB filled or copied (a
// fraction of a millisecond), while the charge costs each instruction a dozen more (about
// 2 ns, against 25 ns or more for even the smallest memory.copy, which wazero runs as a call
// to Go's memmove).

const (
	bulkNone    = iota
	bulkBytes   // memory.fill, memory.copy, memory.init: n bytes
	bulkEntries // table.fill, table.copy, table.init: n table entries
)

// maxEntryCharge is the largest entry count charged in full: 4 units each keeps the cost below
// 2^31. A table.* of more entries would need a table of 4 GiB; it traps before doing any work.
const maxEntryCharge = 1<<29 - 1

// bulkUnit reports what the length operand of 0xFC instruction sub counts, or bulkNone.
func bulkUnit(sub uint32) int {
	switch sub {
	case 8, 10, 11: // memory.init memory.copy memory.fill
		return bulkBytes
	case 12, 14, 17: // table.init table.copy table.fill
		return bulkEntries
	}
	return bulkNone
}

// chargeBulk appends the charge for a bulk instruction whose length operand, of the given unit,
// is on top of the stack (see above), and marks the scratch local used.
func (r *rewriter) chargeBulk(unit int) {
	c, s := r.globals, r.scratch
	r.scratchUsed = true
	b := appendU32(append(r.out, 0x22), s) // local.tee $s
	b = appendU32(append(b, 0x23), c)      // global.get $c
	b = appendU32(append(b, 0x20), s)      // local.get $s
	if unit == bulkBytes {
		b = append(b, 0x41, 0x01, 0x76) // i32.const 1  i32.shr_u
	} else {
		b = appendS32(append(b, 0x41), maxEntryCharge) // i32.const max
		b = appendU32(append(b, 0x20), s)              // local.get $s
		b = appendS32(append(b, 0x41), maxEntryCharge) // i32.const max
		b = append(b, 0x49, 0x1b)                      // i32.lt_u  select: min(n, max)
		b = append(b, 0x41, 0x02, 0x74)                // i32.const 2  i32.shl
	}
	b = append(b, 0x6b)                           // i32.sub
	b = appendU32(append(b, 0x22), s)             // local.tee $s
	b = append(b, 0x41, 0x00, 0x4a)               // i32.const 0  i32.gt_s
	b = appendU32(append(b, 0x23), c)             // global.get $c
	b = append(b, 0x41, 0x00, 0x4a, 0x71)         // i32.const 0  i32.gt_s  i32.and
	b = append(b, 0x04, 0x40)                     // if (empty)
	b = appendU32(append(b, 0x20), s)             // local.get $s
	b = appendU32(append(b, 0x24), c)             // global.set $c
	b = append(b, 0x05)                           // else
	b = appendU32(append(b, 0x10), r.funcImports) // call $yield
	b = appendU32(append(b, 0x24), c)             // global.set $c
	r.out = append(b, 0x0b)                       // end
}
