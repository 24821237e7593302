package yield

// LEB128 readers and writers. The readers take the whole input (or a prefix of it that ends at
// the current section's end) and an absolute position, so every error can name its byte offset.
// They accept exactly what wazero's readers (internal/leb128) accept and read the same number of
// bytes and the same value, so the rewriter and the engine never disagree about where an
// instruction ends, nor about an index. Where wazero is looser than the specification, so are
// they: a stricter reader would refuse modules wazero runs.

// readU32 decodes an unsigned 32-bit LEB128 at b[p:]. It accepts at most 5 bytes, and the 5th
// may carry only the top 4 bits of the value.
func readU32(b []byte, p int) (v uint32, next int, ok bool) {
	for i := 0; i < 5; i++ {
		if p+i >= len(b) {
			return 0, p, false
		}
		c := b[p+i]
		if i == 4 && c >= 0x10 {
			return 0, p, false
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, p + i + 1, true
		}
	}
	return 0, p, false
}

// skipS32 skips a signed 32-bit LEB128 at b[p:] (i32.const), accepting exactly what wazero's
// decodeInt32 accepts: at most 5 bytes, and in a 5th byte bits 4-5 must repeat the sign (bit 3);
// bit 6 is not checked.
func skipS32(b []byte, p int) (next int, ok bool) {
	for i := 0; i < 5; i++ {
		if p+i >= len(b) {
			return p, false
		}
		c := b[p+i]
		if c < 0x80 {
			if i == 4 && c&0x30 != (c&0x08)<<2|(c&0x08)<<1 {
				return p, false
			}
			return p + i + 1, true
		}
	}
	return p, false
}

// skipS64 skips a signed 64-bit LEB128 at b[p:] (i64.const), accepting exactly what wazero's
// decodeInt64 accepts: at most 10 bytes, and in a 10th byte bits 1-5 must repeat the sign
// (bit 0); bit 6 is not checked.
func skipS64(b []byte, p int) (next int, ok bool) {
	for i := 0; i < 10; i++ {
		if p+i >= len(b) {
			return p, false
		}
		c := b[p+i]
		if c < 0x80 {
			if i == 9 && c&0x3f != 0 && c&0x3f != 0x3f {
				return p, false
			}
			return p + i + 1, true
		}
	}
	return p, false
}

// readS33 decodes a signed 33-bit LEB128 at b[p:] (a block type) exactly as wazero's
// DecodeInt33AsInt64 does, quirks included: it stops after 5 bytes whether or not the 5th has
// the continuation bit, and in a 5th byte only bit 5 must repeat the sign.
func readS33(b []byte, p int) (v int64, next int, ok bool) {
	const mask33 = 1<<33 - 1
	var c byte
	n, shift := 0, 0
	for shift < 35 {
		if p+n >= len(b) {
			return 0, p, false
		}
		c = b[p+n]
		v |= int64(c&0x7f) << shift
		shift += 7
		n++
		if c&0x80 == 0 {
			break
		}
	}
	if shift < 33 && c&0x40 != 0 {
		v |= mask33 << shift
	}
	v &= mask33
	if v&(1<<32) != 0 {
		v -= 1 << 33
	}
	if n == 5 && (v < 0) != (c&0x20 != 0) {
		return 0, p, false
	}
	return v, p + n, true
}

// appendU32 appends v as a canonical unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendS32 appends v as a canonical signed LEB128.
func appendS32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
