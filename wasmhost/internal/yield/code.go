package yield

import "slices"

// codeSection rewrites every function body: a yield point after the locals and after every loop
// instruction's block type, a charge before every bulk memory or table instruction (bulk.go, with
// a scratch local declared for it), function indices of call and ref.func shifted, global
// indices of global.get and global.set checked. Everything else is copied byte for byte.
//
// Each yield point charges the counter for the region it starts: the instructions of the
// function or loop body, not counting those inside nested loops (which their own yield points
// charge). Structured control flow only jumps backwards to a loop's start, so an instruction
// cannot run again without passing the yield point of its region first: the counter falls by
// at least the number of instructions executed, and the import is called at least once per
// Budget of them (plus one region).
func (r *rewriter) codeSection(p, end int) error {
	b := r.in[:end]
	n, p, err := r.count(b, p, 2, "function body")
	if err != nil {
		return err
	}
	if n != r.defined {
		return r.errf(ErrMalformed, p, "%d function bodies for %d functions", n, r.defined)
	}
	r.out = append(r.out, secCode)
	secStart := r.open()
	r.out = appendU32(r.out, n)
	for i := uint32(0); i < n; i++ {
		r.fn = int(r.funcImports + i)
		bs, be, err := r.vec(b, p, "function body")
		if err != nil {
			return err
		}
		start := r.open()
		if err := r.body(bs, be); err != nil {
			return err
		}
		if err := r.close(start); err != nil {
			return err
		}
		p = be
	}
	r.fn = -1
	if p != end {
		return r.errf(ErrMalformed, p, "%d bytes after the last function body", end-p)
	}
	return r.close(secStart)
}

// body rewrites one function body, r.in[p:end]: its locals, then its instructions.
func (r *rewriter) body(p, end int) error {
	b := r.in[:end]
	n, q, ok := readU32(b, p)
	if !ok {
		return r.errf(ErrMalformed, p, "bad local declaration count")
	}
	var total uint64
	for i := uint32(0); i < n; i++ {
		c, q2, ok := readU32(b, q)
		if !ok {
			return r.errf(ErrMalformed, q, "local declaration %d: bad count", i)
		}
		if total += uint64(c); total > maxLocals {
			return r.errf(ErrUnsupported, q, "more than %d locals", maxLocals)
		}
		if q2 >= end {
			return r.errf(ErrMalformed, q2, "local declaration %d: truncated", i)
		}
		if !isValType(b[q2]) {
			return r.errf(ErrUnsupported, q2, "local declaration %d: value type %#x", i, b[q2])
		}
		q = q2 + 1
	}
	// The scratch local goes after every parameter and local, so no index moves. Both counts
	// are bounded by the input's size (locals by maxLocals too).
	r.scratch = r.params[r.funcTypes[r.fn-int(r.funcImports)]] + uint32(total)
	r.scratchUsed = false
	localsAt := len(r.out)
	r.out = append(r.out, b[p:q]...)
	r.regions = r.regions[:0]
	r.loops = r.loops[:0]
	r.openRegion()
	if err := r.instructions(b, q); err != nil {
		return err
	}
	if r.scratchUsed {
		// Declare it: one more declaration, (1 i32), at the end. Every region's cost has
		// been written by now, so moving the instructions is safe.
		decls := b[p:q]
		_, d, _ := readU32(decls, 0) // read above
		locals := appendU32(make([]byte, 0, len(decls)+7), n+1)
		locals = append(append(locals, decls[d:]...), 0x01, 0x7f)
		r.out = slices.Replace(r.out, localsAt, localsAt+len(decls), locals...)
	}
	return nil
}

// region is a function or loop body, charged by the yield point at its start.
type region struct {
	costAt int    // offset in r.out of that yield point's cost immediate
	count  uint64 // instructions in the region so far, nested loops excluded
}

// openRegion appends a yield point and opens its region.
func (r *rewriter) openRegion() {
	r.regions = append(r.regions, region{costAt: len(r.out) + r.costAt})
	r.out = append(r.out, r.yieldPoint...)
}

// closeRegion closes the innermost region, whose instruction count is n, writing its cost.
func (r *rewriter) closeRegion(n uint64) {
	g := r.regions[len(r.regions)-1]
	r.regions = r.regions[:len(r.regions)-1]
	putCost(r.out[g.costAt:], uint32(min(max(n, 1), maxCost)))
}

// instructions rewrites the instruction sequence b[p:], which must end with the function's
// final end exactly at len(b). It decodes immediates as wazero's validator does
// (internal/wasm/func_validation.go), so both agree on every instruction boundary.
func (r *rewriter) instructions(b []byte, p int) error {
	end := len(b)
	flush := p   // b[flush:p] is still to be copied to r.out
	var n uint64 // instructions in the innermost region so far
	var ok bool  // immediates decoded
	for p < end {
		at, op := p, b[p]
		p++
		n++
		ok = true
		switch op {
		case 0x00, 0x01, 0x05, 0x0f, 0x1a, 0x1b, 0xd1: // unreachable nop else return drop select ref.is_null
		case 0x02, 0x04: // block if
			var err error
			if p, err = r.blockType(b, p); err != nil {
				return err
			}
			r.loops = append(r.loops, false)
		case 0x03: // loop: the yield point goes after the block type
			var err error
			if p, err = r.blockType(b, p); err != nil {
				return err
			}
			r.loops = append(r.loops, true)
			r.out = append(r.out, b[flush:p]...)
			flush = p
			r.regions[len(r.regions)-1].count = n
			r.openRegion()
			n = 0
		case 0x0b: // end
			if len(r.loops) == 0 { // the function's
				if p != end {
					return r.errf(ErrMalformed, p, "%d bytes after the function's final end", end-p)
				}
				r.out = append(r.out, b[flush:p]...)
				r.closeRegion(n)
				return nil
			}
			loop := r.loops[len(r.loops)-1]
			r.loops = r.loops[:len(r.loops)-1]
			if loop {
				// Patch only once its bytes are out: the cost lives in r.out.
				r.out = append(r.out, b[flush:p]...)
				flush = p
				r.closeRegion(n)
				n = r.regions[len(r.regions)-1].count
			}
		case 0x0c, 0x0d, 0x20, 0x21, 0x22, 0x25, 0x26: // br br_if local.* table.get table.set
			_, p, ok = readU32(b, p)
		case 0x0e: // br_table
			var n uint32
			if n, p, ok = readU32(b, p); ok {
				if uint64(n) >= uint64(end-p) {
					return r.errf(ErrMalformed, at, "br_table with %d labels: larger than the body", n)
				}
				for i := uint32(0); i <= n && ok; i++ {
					_, p, ok = readU32(b, p)
				}
			}
		case 0x10, 0xd2: // call ref.func
			var x uint32
			if x, p, ok = readU32(b, p); ok {
				y, err := r.funcIndex(x, at+1)
				if err != nil {
					return err
				}
				if y != x {
					r.out = append(r.out, b[flush:at+1]...)
					r.out = appendU32(r.out, y)
					flush = p
				}
			}
		case 0x11: // call_indirect type table
			var t uint32
			if t, p, ok = readU32(b, p); ok {
				if t >= r.types {
					return r.errf(ErrMalformed, at+1, "call_indirect type index %d out of range (%d types)", t, r.types)
				}
				_, p, ok = readU32(b, p)
			}
		case 0x1c: // select t*: wazero reads the count as one byte and wants exactly one type
			if ok = p+2 <= end; ok {
				if b[p] != 0x01 || !isValType(b[p+1]) {
					return r.errf(ErrUnsupported, at, "select with types % x", b[p:p+2])
				}
				p += 2
			}
		case 0x23, 0x24: // global.get global.set
			var x uint32
			if x, p, ok = readU32(b, p); ok {
				if err := r.globalIndex(x, at+1); err != nil {
					return err
				}
			}
		case 0x3f, 0x40: // memory.size memory.grow: reserved 0x00
			if ok = p < end; ok {
				if b[p] != 0x00 {
					return r.errf(ErrUnsupported, p, "memory index byte %#x (multi-memory)", b[p])
				}
				p++
			}
		case 0x41: // i32.const
			p, ok = skipS32(b, p)
		case 0x42: // i64.const
			p, ok = skipS64(b, p)
		case 0x43: // f32.const
			p += 4
			ok = p <= end
		case 0x44: // f64.const
			p += 8
			ok = p <= end
		case 0xd0: // ref.null t
			if ok = p < end; ok {
				if !isRefType(b[p]) {
					return r.errf(ErrUnsupported, p, "ref.null type %#x", b[p])
				}
				p++
			}
		case 0xfc:
			var err error
			var sub uint32
			if sub, p, err = r.misc(b, at); err != nil {
				return err
			}
			if unit := bulkUnit(sub); unit != 0 {
				// The charge goes before the instruction, whose length is on the stack.
				r.out = append(r.out, b[flush:at]...)
				flush = at
				r.chargeBulk(unit)
			}
		case 0xfd:
			var err error
			if p, err = r.simd(b, at); err != nil {
				return err
			}
		case 0x06, 0x07, 0x08, 0x09, 0x0a, 0x18, 0x19, 0x1f:
			return r.errf(ErrUnsupported, at, "exception handling (opcode %#x)", op)
		case 0x12, 0x13:
			return r.errf(ErrUnsupported, at, "tail call (opcode %#x)", op)
		case 0x14, 0x15, 0xd3, 0xd4, 0xd5, 0xd6:
			return r.errf(ErrUnsupported, at, "typed function references (opcode %#x)", op)
		case 0xfe:
			return r.errf(ErrUnsupported, at, "threads (opcode 0xfe)")
		default:
			switch {
			case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
				p, ok = memarg(b, p)
			case op >= 0x45 && op <= 0xc4: // numeric, no immediates
			default:
				return r.errf(ErrMalformed, at, "unknown opcode %#x", op)
			}
		}
		if !ok {
			return r.errf(ErrMalformed, at, "truncated or bad immediate of opcode %#x", op)
		}
	}
	return r.errf(ErrMalformed, end, "function body ends inside %d open blocks", len(r.loops)+1)
}

// memarg skips a memory argument: align and offset, two u32. wazero rejects the multi-memory
// form (align bit 6) itself, reading the same bytes.
func memarg(b []byte, p int) (int, bool) {
	_, p, ok := readU32(b, p)
	if !ok {
		return p, false
	}
	_, p, ok = readU32(b, p)
	return p, ok
}

// blockType skips the block type at b[p:]: an s33 that is either a type index or one of the
// negative shorthands (empty, or one V2 value type). wazero decodes it the same way.
func (r *rewriter) blockType(b []byte, p int) (int, error) {
	v, q, ok := readS33(b, p)
	if !ok {
		return p, r.errf(ErrMalformed, p, "bad block type")
	}
	if v >= 0 {
		if v >= int64(r.types) {
			return p, r.errf(ErrMalformed, p, "block type index %d out of range (%d types)", v, r.types)
		}
		return q, nil
	}
	switch v {
	case -64, -1, -2, -3, -4, -5, -16, -17: // empty i32 i64 f32 f64 v128 funcref externref
		return q, nil
	}
	return p, r.errf(ErrUnsupported, p, "block type %d", v)
}

// misc skips a 0xFC-prefixed instruction starting at b[at] (the prefix): saturating
// conversions, bulk memory and table instructions. It returns the sub-opcode.
func (r *rewriter) misc(b []byte, at int) (uint32, int, error) {
	sub, p, ok := readU32(b, at+1)
	if !ok {
		return 0, p, r.errf(ErrMalformed, at, "bad 0xfc sub-opcode")
	}
	zero := func() { // a reserved memory index: wazero wants one 0x00 byte
		if ok && (p >= len(b) || b[p] != 0x00) {
			ok = false
		}
		p++
	}
	u32 := func() {
		if ok {
			_, p, ok = readU32(b, p)
		}
	}
	switch sub {
	case 0, 1, 2, 3, 4, 5, 6, 7: // trunc_sat
	case 8: // memory.init data 0
		u32()
		zero()
	case 9, 13, 15, 16, 17: // data.drop elem.drop table.grow table.size table.fill
		u32()
	case 10: // memory.copy 0 0
		zero()
		zero()
	case 11: // memory.fill 0
		zero()
	case 12, 14: // table.init elem table, table.copy dst src
		u32()
		u32()
	default:
		return sub, p, r.errf(ErrUnsupported, at, "instruction 0xfc %d", sub)
	}
	if !ok {
		return sub, p, r.errf(ErrMalformed, at, "truncated or bad immediate of instruction 0xfc %d", sub)
	}
	return sub, p, nil
}
