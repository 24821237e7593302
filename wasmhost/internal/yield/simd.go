package yield

// SIMD (0xFD-prefixed) instructions.
//
// The specification encodes the sub-opcode as a u32 LEB128, but wazero v1.12 reads it as one
// byte (func_validation.go and the wazevo frontend: vecOpcode := body[pc]). Canonical encodings
// still agree: opcodes below 0x80 are one byte, and opcodes 0x80-0xFF are two bytes, op|0x80 then
// 0x01, which wazero reads as the opcode followed by a nop (none of them has immediates). Any
// other encoding (an overlong one, or an opcode >= 0x100 such as relaxed SIMD) would be read
// differently by the two decoders, which could hide instructions from the rewriter, so it is
// rejected.

// Immediate kinds of a SIMD instruction.
const (
	simdInvalid    = iota // not an opcode wazero knows
	simdNone              // no immediate
	simdMemarg            // align, offset
	simdMemargLane        // align, offset, lane byte
	simdLane              // lane byte
	simd16                // 16 bytes: v128.const value or i8x16.shuffle lanes
)

// simdImmediates maps every SIMD opcode to its immediates. It matches the opcode constants
// in wazero's internal/wasm/instruction.go (236 opcodes, all handled by its validator): every
// byte value except the 20 the SIMD proposal leaves unassigned.
var simdImmediates = func() (t [256]uint8) {
	for i := range t {
		t[i] = simdNone
	}
	for _, op := range [...]byte{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb,
		0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		t[op] = simdInvalid
	}
	for op := 0x00; op <= 0x0b; op++ { // v128.load* and v128.store
		t[op] = simdMemarg
	}
	t[0x5c], t[0x5d] = simdMemarg, simdMemarg // v128.load32_zero, v128.load64_zero
	t[0x0c], t[0x0d] = simd16, simd16         // v128.const, i8x16.shuffle
	for op := 0x15; op <= 0x22; op++ {        // extract_lane, replace_lane
		t[op] = simdLane
	}
	for op := 0x54; op <= 0x5b; op++ { // v128.load*_lane, v128.store*_lane
		t[op] = simdMemargLane
	}
	return t
}()

// simd skips a SIMD instruction starting at b[at] (the 0xFD prefix).
func (r *rewriter) simd(b []byte, at int) (int, error) {
	p := at + 1
	if p >= len(b) {
		return p, r.errf(ErrMalformed, at, "truncated SIMD instruction")
	}
	op := b[p]
	p++
	if op >= 0x80 {
		if p >= len(b) || b[p] != 0x01 {
			return p, r.errf(ErrUnsupported, at, "SIMD opcode encoding % x (wazero reads one byte)", b[at+1:min(p+1, len(b))])
		}
		p++
	}
	ok := true
	switch simdImmediates[op] {
	case simdInvalid:
		return p, r.errf(ErrUnsupported, at, "SIMD opcode %#x", op)
	case simdNone:
	case simdMemarg:
		p, ok = memarg(b, p)
	case simdMemargLane:
		if p, ok = memarg(b, p); ok {
			p++
			ok = p <= len(b)
		}
	case simdLane:
		p++
		ok = p <= len(b)
	case simd16:
		p += 16
		ok = p <= len(b)
	}
	if !ok {
		return p, r.errf(ErrMalformed, at, "truncated or bad immediate of SIMD opcode %#x", op)
	}
	return p, nil
}
