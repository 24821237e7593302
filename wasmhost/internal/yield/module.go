package yield

import (
	"bytes"
	"fmt"
	"math"
)

// Section ids (WebAssembly 2.0 plus the exception-handling tag section, which is rejected).
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

var sectionNames = [...]string{
	secCustom: "custom", secType: "type", secImport: "import", secFunction: "function",
	secTable: "table", secMemory: "memory", secGlobal: "global", secExport: "export",
	secStart: "start", secElement: "element", secCode: "code", secData: "data",
	secDataCount: "datacount", secTag: "tag",
}

// rank is a section's position in the required order (custom sections excepted): data count
// sits between element and code, tag between memory and global. 0 for an unknown id.
func rank(id byte) int {
	switch id {
	case secType, secImport, secFunction, secTable, secMemory:
		return int(id)
	case secTag:
		return 6
	case secGlobal, secExport, secStart, secElement:
		return int(id) + 1
	case secDataCount:
		return 11
	case secCode:
		return 12
	case secData:
		return 13
	}
	return 0
}

// maxIndexSpace caps the size of every index space (types, functions, globals), like wazero's
// wasm.MaximumFunctionIndex and MaximumGlobals: it keeps index+1 from overflowing and rejects
// absurd modules before any work is done.
const maxIndexSpace = 1 << 27

// maxLocals caps the locals a function may declare (V8 and the JS API use the same limit).
// wazero allocates a slice of that many entries per function while decoding, so without this a
// few bytes ("4294967295 × i32") would make it allocate gigabytes.
const maxLocals = 50000

var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// span is the content of a section in the input.
type span struct {
	start, end int
	present    bool
}

// rewriter holds one Instrument call's state.
type rewriter struct {
	in  []byte
	cfg Config
	out []byte

	// Facts about the input, filled by scan.
	sections    [secTag + 1]span
	types       uint32   // entries in the type section
	funcImports uint32   // imported functions: the yield import's index
	globals     uint32   // imported and defined globals: the counter global's index
	funcs       uint32   // imported and defined functions
	defined     uint32   // entries in the function section
	params      []uint32 // parameter count of each type
	funcTypes   []uint32 // type index of each defined function

	yieldPoint []byte   // template, see buildYieldPoint
	costAt     int      // offset of its cost immediate
	regions    []region // open function and loop bodies, innermost last
	loops      []bool   // open blocks of the current body: is it a loop

	// The current body's scratch local (see chargeBulk): its index, one past the function's
	// parameters and locals, and whether a bulk instruction used it, so that it must be declared.
	scratch     uint32
	scratchUsed bool

	// Where we are, for errors.
	section string
	fn      int
}

func (r *rewriter) errf(kind error, off int, format string, args ...any) error {
	return &Error{Section: r.section, Func: r.fn, Offset: off, Err: fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))}
}

// count reads a vector length at b[p:] and checks that the rest of b can hold that many
// entries of at least minSize bytes each, so no loop runs longer than the input allows.
func (r *rewriter) count(b []byte, p, minSize int, what string) (uint32, int, error) {
	n, q, ok := readU32(b, p)
	if !ok {
		return 0, p, r.errf(ErrMalformed, p, "%s count: bad LEB128", what)
	}
	if uint64(n)*uint64(minSize) > uint64(len(b)-q) {
		return 0, p, r.errf(ErrMalformed, p, "%s count %d: larger than the %d bytes left", what, n, len(b)-q)
	}
	return n, q, nil
}

// vec reads a byte vector (a name or data segment contents) at b[p:] and returns its bounds.
func (r *rewriter) vec(b []byte, p int, what string) (start, end int, err error) {
	n, q, ok := readU32(b, p)
	if !ok {
		return 0, 0, r.errf(ErrMalformed, p, "%s length: bad LEB128", what)
	}
	if uint64(n) > uint64(len(b)-q) {
		return 0, 0, r.errf(ErrMalformed, p, "%s length %d: larger than the %d bytes left", what, n, len(b)-q)
	}
	return q, q + int(n), nil
}

// scan checks the header and section layout and collects the counts the rewrite needs before
// it reaches the sections that use them (the name section may come first).
func (r *rewriter) scan() error {
	r.section = "header"
	if len(r.in) < len(header) || !bytes.Equal(r.in[:4], header[:4]) {
		return r.errf(ErrMalformed, 0, "not a wasm binary (bad magic)")
	}
	if !bytes.Equal(r.in[4:8], header[4:]) {
		return r.errf(ErrUnsupported, 4, "wasm version % x: want 01 00 00 00", r.in[4:8])
	}
	last := 0
	for p := len(header); p < len(r.in); {
		id := r.in[p]
		r.section = "section header"
		size, q, ok := readU32(r.in, p+1)
		if !ok {
			return r.errf(ErrMalformed, p+1, "section id %d: bad size", id)
		}
		if uint64(size) > uint64(len(r.in)-q) {
			return r.errf(ErrMalformed, p+1, "section id %d: size %d larger than the %d bytes left", id, size, len(r.in)-q)
		}
		end := q + int(size)
		if id != secCustom {
			rk := rank(id)
			switch {
			case id == secTag:
				r.section = "tag"
				return r.errf(ErrUnsupported, p, "exception handling (tag section)")
			case rk == 0:
				return r.errf(ErrMalformed, p, "unknown section id %d", id)
			case rk <= last:
				return r.errf(ErrMalformed, p, "section %s out of order or repeated", sectionNames[id])
			}
			last = rk
			r.sections[id] = span{start: q, end: end, present: true}
		}
		p = end
	}

	if s := r.sections[secType]; s.present {
		if err := r.scanTypes(s.start, s.end); err != nil {
			return err
		}
	}
	if s := r.sections[secImport]; s.present {
		if err := r.scanImports(s.start, s.end); err != nil {
			return err
		}
	}
	if s := r.sections[secFunction]; s.present {
		if err := r.scanFunctions(s.start, s.end); err != nil {
			return err
		}
	}
	if s := r.sections[secGlobal]; s.present {
		r.section = "global"
		n, _, err := r.count(r.in[:s.end], s.start, 3, "global")
		if err != nil {
			return err
		}
		r.globals += n
	}
	r.section = "module"
	if r.defined > 0 && !r.sections[secCode].present {
		return r.errf(ErrMalformed, len(r.in), "%d functions declared but no code section", r.defined)
	}
	if uint64(r.funcImports)+uint64(r.defined) >= maxIndexSpace {
		return r.errf(ErrUnsupported, 0, "%d imported + %d defined functions: too many", r.funcImports, r.defined)
	}
	if r.globals >= maxIndexSpace {
		return r.errf(ErrUnsupported, 0, "%d globals: too many", r.globals)
	}
	r.funcs = r.funcImports + r.defined
	return nil
}

// rewrite writes the instrumented module to r.out, section by section, inserting the type,
// import and global sections where they belong when the input has none.
func (r *rewriter) rewrite() error {
	r.out = make([]byte, 0, len(r.in)+len(r.in)/8+64)
	r.out = append(r.out, header...)
	r.yieldPoint, r.costAt = r.buildYieldPoint()

	created := [secTag + 1]bool{}
	create := func(before int) {
		for _, id := range [...]byte{secType, secImport, secGlobal} {
			if !r.sections[id].present && !created[id] && rank(id) < before {
				created[id] = true
				r.out = append(r.out, id)
				start := r.open()
				r.out = appendU32(r.out, 1)
				switch id {
				case secType:
					r.out = r.appendYieldType(r.out)
				case secImport:
					r.out = r.appendYieldImport(r.out)
				case secGlobal:
					r.out = r.appendCounterGlobal(r.out)
				}
				_ = r.close(start) // a few bytes: cannot fail
			}
		}
	}

	for p := len(header); p < len(r.in); {
		id := r.in[p]
		size, q, _ := readU32(r.in, p+1) // checked by scan
		end := q + int(size)
		r.section, r.fn = sectionNames[id], -1
		if id == secCustom {
			if err := r.custom(p, q, end); err != nil {
				return err
			}
			p = end
			continue
		}
		create(rank(id))
		var err error
		switch id {
		case secType:
			err = r.appendVector(id, q, end, r.appendYieldType)
		case secImport:
			err = r.appendVector(id, q, end, r.appendYieldImport)
		case secFunction, secDataCount:
			r.out = append(r.out, r.in[p:end]...) // validated by scan / nothing to change
		case secTable:
			err = r.tables(p, q, end)
		case secMemory:
			err = r.memories(p, q, end)
		case secGlobal:
			err = r.globalSection(q, end)
		case secExport:
			err = r.exports(q, end)
		case secStart:
			err = r.start(q, end)
		case secElement:
			err = r.elements(q, end)
		case secCode:
			err = r.codeSection(q, end)
		case secData:
			err = r.dataSection(q, end)
		}
		if err != nil {
			return err
		}
		p = end
	}
	create(math.MaxInt)
	return nil
}

// open appends a placeholder for a size prefix and returns where the sized content starts.
func (r *rewriter) open() int {
	r.out = append(r.out, 0, 0, 0, 0, 0)
	return len(r.out)
}

// close writes the size of r.out[start:] into the placeholder before it, as a canonical LEB128,
// moving the content down over the unused placeholder bytes.
func (r *rewriter) close(start int) error {
	n := len(r.out) - start
	if uint64(n) > math.MaxUint32 {
		return r.errf(ErrUnsupported, 0, "output section of %d bytes: too large", n)
	}
	var tmp [5]byte
	size := appendU32(tmp[:0], uint32(n))
	at := start - 5
	copy(r.out[at+len(size):], r.out[start:])
	copy(r.out[at:], size)
	r.out = r.out[:at+len(size)+n]
	return nil
}

// appendVector copies a section that is a plain vector (type, import) and appends one entry.
func (r *rewriter) appendVector(id byte, p, end int, entry func([]byte) []byte) error {
	n, q, ok := readU32(r.in[:end], p) // checked by scan
	if !ok {
		return r.errf(ErrMalformed, p, "count: bad LEB128")
	}
	r.out = append(r.out, id)
	start := r.open()
	r.out = appendU32(r.out, n+1)
	r.out = append(r.out, r.in[q:end]...)
	r.out = entry(r.out)
	return r.close(start)
}

// buildYieldPoint encodes the instructions placed at the start of every function and loop body
// and returns them with the offset of their cost immediate:
//
//	global.get $c  i32.const 0  i32.gt_s
//	if
//	  global.get $c  i32.const <cost>  i32.sub  global.set $c
//	else
//	  call $yield  global.set $c
//	end
//
// The hot path is one load, compare, branch, subtract and store; wazero keeps the loaded value
// in a register for the then-arm. It is stack-neutral and its if has the empty block type, so it
// is valid at the start of any function or loop body whatever the loop's parameters. <cost> is
// a 5-byte (padded) LEB128 so it can be filled in once the region's end has been reached.
func (r *rewriter) buildYieldPoint() ([]byte, int) {
	c, f := r.globals, r.funcImports
	b := make([]byte, 0, 48)
	b = appendU32(append(b, 0x23), c) // global.get $c
	b = append(b, 0x41, 0x00, 0x4a)   // i32.const 0; i32.gt_s
	b = append(b, 0x04, 0x40)         // if (empty)
	b = appendU32(append(b, 0x23), c) // global.get $c
	b = append(b, 0x41)               // i32.const <cost>
	costAt := len(b)
	b = append(b, 0, 0, 0, 0, 0)
	putCost(b[costAt:], 1)
	b = append(b, 0x6b)               // i32.sub
	b = appendU32(append(b, 0x24), c) // global.set $c
	b = append(b, 0x05)               // else
	b = appendU32(append(b, 0x10), f) // call $yield
	b = appendU32(append(b, 0x24), c) // global.set $c
	return append(b, 0x0b), costAt    // end
}

// maxCost caps a yield point's cost, so that subtracting it from a positive counter cannot
// overflow an i32.
const maxCost = 1<<31 - 1

// putCost writes v (<= maxCost) into b[:5] as a 5-byte signed LEB128.
func putCost(b []byte, v uint32) {
	b[0] = byte(v)&0x7f | 0x80
	b[1] = byte(v>>7)&0x7f | 0x80
	b[2] = byte(v>>14)&0x7f | 0x80
	b[3] = byte(v>>21)&0x7f | 0x80
	b[4] = byte(v>>28) & 0x07
}

// appendYieldType appends the type (func (result i32)).
func (r *rewriter) appendYieldType(b []byte) []byte {
	return append(b, 0x60, 0x00, 0x01, 0x7f)
}

// appendYieldImport appends (import cfg.Module cfg.Name (func (type <the new type>))).
func (r *rewriter) appendYieldImport(b []byte) []byte {
	b = append(appendU32(b, uint32(len(r.cfg.Module))), r.cfg.Module...)
	b = append(appendU32(b, uint32(len(r.cfg.Name))), r.cfg.Name...)
	return appendU32(append(b, 0x00), r.types)
}

// appendCounterGlobal appends (global (mut i32) (i32.const cfg.Budget)).
func (r *rewriter) appendCounterGlobal(b []byte) []byte {
	b = append(b, 0x7f, 0x01, 0x41)
	return append(appendS32(b, r.cfg.Budget), 0x0b)
}
