package yield

// A small WebAssembly binary encoder for the tests, in the style of
// wasmhost/wasm_builder_test.go but covering every section, so the tests can
// hand-build modules with exactly the shape they need. Each test shows its
// module in the text format next to the builder calls.

const (
	i32  byte = 0x7f
	i64  byte = 0x7e
	f32  byte = 0x7d
	f64  byte = 0x7c
	v128 byte = 0x7b
	fref byte = 0x70
	xref byte = 0x6f
)

// Opcodes used by the tests.
const (
	opUnreachable  = 0x00
	opBlock        = 0x02
	opLoop         = 0x03
	opIf           = 0x04
	opElse         = 0x05
	opEnd          = 0x0b
	opBr           = 0x0c
	opBrIf         = 0x0d
	opBrTable      = 0x0e
	opReturn       = 0x0f
	opCall         = 0x10
	opCallIndirect = 0x11
	opDrop         = 0x1a
	opSelectT      = 0x1c
	opLocalGet     = 0x20
	opLocalSet     = 0x21
	opLocalTee     = 0x22
	opGlobalGet    = 0x23
	opGlobalSet    = 0x24
	opTableGet     = 0x25
	opTableSet     = 0x26
	opI32Load      = 0x28
	opI32Load8U    = 0x2d
	opI32Store     = 0x36
	opI32Const     = 0x41
	opI64Const     = 0x42
	opI32Eqz       = 0x45
	opI32LtS       = 0x48
	opI32LtU       = 0x49
	opI32Add       = 0x6a
	opI32Sub       = 0x6b
	opI32Mul       = 0x6c
	opI32Extend8S  = 0xc0
	opRefNull      = 0xd0
	opRefIsNull    = 0xd1
	opRefFunc      = 0xd2
	opMisc         = 0xfc
	opSIMD         = 0xfd

	blockEmpty = 0x40
)

// A section: id and content.
type section struct {
	id   byte
	body []byte
}

// module encodes the header and sections, in the order given.
func module(secs ...section) []byte {
	out := []byte{0x00, 'a', 's', 'm', 1, 0, 0, 0}
	for _, s := range secs {
		out = append(out, s.id)
		out = uleb(out, uint64(len(s.body)))
		out = append(out, s.body...)
	}
	return out
}

// vecSection is a section whose content is a vector of the entries.
func vecSection(id byte, entries ...[]byte) section {
	return section{id, vec(entries...)}
}

func customSection(name string, data ...[]byte) section {
	return section{0, cat(str(name), cat(data...))}
}

func typeSec(entries ...[]byte) section   { return vecSection(1, entries...) }
func importSec(entries ...[]byte) section { return vecSection(2, entries...) }
func tableSec(entries ...[]byte) section  { return vecSection(4, entries...) }
func memorySec(entries ...[]byte) section { return vecSection(5, entries...) }
func globalSec(entries ...[]byte) section { return vecSection(6, entries...) }
func exportSec(entries ...[]byte) section { return vecSection(7, entries...) }
func startSec(fn uint32) section          { return section{8, uleb(nil, uint64(fn))} }
func elemSec(entries ...[]byte) section   { return vecSection(9, entries...) }
func dataCountSec(n uint32) section       { return section{12, uleb(nil, uint64(n))} }
func dataSec(entries ...[]byte) section   { return vecSection(11, entries...) }
func functionSec(types ...uint32) section { return section{3, u32vec(types...)} }
func codeSec(bodies ...[]byte) section    { return vecSection(10, bodies...) }
func funcType(params, results []byte) []byte {
	return cat([]byte{0x60}, vec1(params), vec1(results))
}

func importFunc(mod, name string, typ uint32) []byte {
	return cat(str(mod), str(name), []byte{0x00}, uleb(nil, uint64(typ)))
}

func importGlobal(mod, name string, vt byte, mutable bool) []byte {
	return cat(str(mod), str(name), []byte{0x03, vt, b2u(mutable)})
}

func importMemory(mod, name string, min uint32) []byte {
	return cat(str(mod), str(name), []byte{0x02, 0x00}, uleb(nil, uint64(min)))
}

func importTable(mod, name string, min uint32) []byte {
	return cat(str(mod), str(name), []byte{0x01, fref, 0x00}, uleb(nil, uint64(min)))
}

func table(rt byte, min uint32) []byte { return cat([]byte{rt, 0x00}, uleb(nil, uint64(min))) }
func memory(min uint32) []byte         { return cat([]byte{0x00}, uleb(nil, uint64(min))) }

func global(vt byte, mutable bool, init ...[]byte) []byte {
	return cat([]byte{vt, b2u(mutable)}, cat(init...), []byte{opEnd})
}

func export(name string, kind byte, idx uint32) []byte {
	return cat(str(name), []byte{kind}, uleb(nil, uint64(idx)))
}

func exportFunc(name string, idx uint32) []byte { return export(name, 0, idx) }

// expr is a constant expression: the instructions and end.
func expr(instrs ...[]byte) []byte { return append(cat(instrs...), opEnd) }

// code is a function body: locals as (count, type) pairs, instructions, end.
func code(locals []byte, instrs ...[]byte) []byte {
	var l []byte
	l = uleb(l, uint64(len(locals)/2))
	for i := 0; i+1 < len(locals); i += 2 {
		l = uleb(l, uint64(locals[i]))
		l = append(l, locals[i+1])
	}
	body := append(cat(l, cat(instrs...)), opEnd)
	return cat(uleb(nil, uint64(len(body))), body)
}

func i32c(v int32) []byte       { return sleb([]byte{opI32Const}, int64(v)) }
func i64c(v int64) []byte       { return sleb([]byte{opI64Const}, v) }
func call(f uint32) []byte      { return uleb([]byte{opCall}, uint64(f)) }
func refFunc(f uint32) []byte   { return uleb([]byte{opRefFunc}, uint64(f)) }
func localGet(i uint32) []byte  { return uleb([]byte{opLocalGet}, uint64(i)) }
func localSet(i uint32) []byte  { return uleb([]byte{opLocalSet}, uint64(i)) }
func localTee(i uint32) []byte  { return uleb([]byte{opLocalTee}, uint64(i)) }
func globalGet(i uint32) []byte { return uleb([]byte{opGlobalGet}, uint64(i)) }
func globalSet(i uint32) []byte { return uleb([]byte{opGlobalSet}, uint64(i)) }
func br(l uint32) []byte        { return uleb([]byte{opBr}, uint64(l)) }
func brIf(l uint32) []byte      { return uleb([]byte{opBrIf}, uint64(l)) }
func op(b ...byte) []byte       { return b }

func callIndirect(typ, tbl uint32) []byte {
	return uleb(uleb([]byte{opCallIndirect}, uint64(typ)), uint64(tbl))
}

// misc encodes a 0xFC instruction with u32 immediates.
func misc(sub uint32, imms ...uint32) []byte {
	b := uleb([]byte{opMisc}, uint64(sub))
	for _, x := range imms {
		b = uleb(b, uint64(x))
	}
	return b
}

// simd encodes a 0xFD instruction (opcode as u32 LEB128) followed by raw immediates.
func simd(sub uint32, imm ...byte) []byte {
	return append(uleb([]byte{opSIMD}, uint64(sub)), imm...)
}

func uleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		done := (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0)
		if !done {
			c |= 0x80
		}
		b = append(b, c)
		if done {
			return b
		}
	}
}

func vec(entries ...[]byte) []byte {
	return cat(uleb(nil, uint64(len(entries))), cat(entries...))
}

func vec1(b []byte) []byte { return cat(uleb(nil, uint64(len(b))), b) }

func u32vec(xs ...uint32) []byte {
	b := uleb(nil, uint64(len(xs)))
	for _, x := range xs {
		b = uleb(b, uint64(x))
	}
	return b
}

func str(s string) []byte { return vec1([]byte(s)) }

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
