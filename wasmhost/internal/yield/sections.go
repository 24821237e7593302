package yield

import "bytes"

// Sections other than code: each is parsed completely, because any of them may hold a function
// or global index (or, under proposals wazero would decode, an expression that does), and
// copied with the function indices shifted.

// isValType reports whether t is a value type of api.CoreFeaturesV2 (i32, i64, f32, f64, v128,
// funcref, externref). Typed references (0x63/0x64) and exnref (0x69) are not.
func isValType(t byte) bool {
	switch t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return true
	}
	return false
}

func isRefType(t byte) bool { return t == 0x70 || t == 0x6f }

// scanTypes checks the type section: a vector of (func params results).
func (r *rewriter) scanTypes(p, end int) error {
	r.section = "type"
	b := r.in[:end]
	n, p, err := r.count(b, p, 3, "type")
	if err != nil {
		return err
	}
	r.params = make([]uint32, 0, n)
	for i := uint32(0); i < n; i++ {
		if p >= end {
			return r.errf(ErrMalformed, p, "type[%d]: truncated", i)
		}
		if b[p] != 0x60 {
			return r.errf(ErrUnsupported, p, "type[%d]: form %#x: want func (0x60)", i, b[p])
		}
		p++
		for k, what := range [...]string{"params", "results"} {
			m, q, err := r.count(b, p, 1, what)
			if err != nil {
				return err
			}
			if k == 0 {
				r.params = append(r.params, m)
			}
			for j := uint32(0); j < m; j++ {
				if !isValType(b[q]) {
					return r.errf(ErrUnsupported, q, "type[%d]: %s: value type %#x", i, what, b[q])
				}
				q++
			}
			p = q
		}
	}
	if p != end {
		return r.errf(ErrMalformed, p, "%d bytes after the last type", end-p)
	}
	if n >= maxIndexSpace {
		return r.errf(ErrUnsupported, p, "%d types: too many", n)
	}
	r.types = n
	return nil
}

// scanImports counts imported functions and globals and checks every import.
func (r *rewriter) scanImports(p, end int) error {
	r.section = "import"
	b := r.in[:end]
	n, p, err := r.count(b, p, 4, "import")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		at := p
		ms, me, err := r.vec(b, p, "module name")
		if err != nil {
			return err
		}
		ns, ne, err := r.vec(b, me, "name")
		if err != nil {
			return err
		}
		if string(b[ms:me]) == r.cfg.Module && string(b[ns:ne]) == r.cfg.Name {
			return r.errf(ErrUnsupported, at, "import[%d] %s.%s: the module imports the yield function itself", i, r.cfg.Module, r.cfg.Name)
		}
		if p = ne; p >= end {
			return r.errf(ErrMalformed, p, "import[%d]: truncated", i)
		}
		kind := b[p]
		p++
		switch kind {
		case 0x00: // func
			t, q, ok := readU32(b, p)
			if !ok {
				return r.errf(ErrMalformed, p, "import[%d]: bad type index", i)
			}
			if t >= r.types {
				return r.errf(ErrMalformed, p, "import[%d]: type index %d out of range (%d types)", i, t, r.types)
			}
			r.funcImports++
			p = q
		case 0x01: // table
			if _, p, err = r.tableType(b, p); err != nil {
				return err
			}
		case 0x02: // memory
			if _, p, err = r.limits(b, p, true); err != nil {
				return err
			}
		case 0x03: // global
			if p+2 > end {
				return r.errf(ErrMalformed, p, "import[%d]: truncated global type", i)
			}
			if !isValType(b[p]) {
				return r.errf(ErrUnsupported, p, "import[%d]: global value type %#x", i, b[p])
			}
			if b[p+1] > 1 {
				return r.errf(ErrMalformed, p+1, "import[%d]: global mutability %#x", i, b[p+1])
			}
			r.globals++
			p += 2
		case 0x04:
			return r.errf(ErrUnsupported, p-1, "import[%d]: exception handling (tag import)", i)
		default:
			return r.errf(ErrMalformed, p-1, "import[%d]: kind %#x", i, kind)
		}
	}
	if p != end {
		return r.errf(ErrMalformed, p, "%d bytes after the last import", end-p)
	}
	return nil
}

// scanFunctions checks the function section (a vector of type indices) and counts its entries.
func (r *rewriter) scanFunctions(p, end int) error {
	r.section = "function"
	b := r.in[:end]
	n, p, err := r.count(b, p, 1, "function")
	if err != nil {
		return err
	}
	r.funcTypes = make([]uint32, 0, n)
	for i := uint32(0); i < n; i++ {
		t, q, ok := readU32(b, p)
		if !ok {
			return r.errf(ErrMalformed, p, "function[%d]: bad type index", i)
		}
		if t >= r.types {
			return r.errf(ErrMalformed, p, "function[%d]: type index %d out of range (%d types)", i, t, r.types)
		}
		r.funcTypes = append(r.funcTypes, t)
		p = q
	}
	if p != end {
		return r.errf(ErrMalformed, p, "%d bytes after the last function", end-p)
	}
	r.defined = n
	return nil
}

// tableType checks a reference type and limits. The typed-function-references forms (an
// initialiser prefixed by 0x40 0x00, or a 0x63/0x64 reference type) are rejected: wazero decodes
// them even without the feature, and their expressions could name functions.
func (r *rewriter) tableType(b []byte, p int) (sizeLimits, int, error) {
	if p >= len(b) {
		return sizeLimits{}, p, r.errf(ErrMalformed, p, "truncated table type")
	}
	if !isRefType(b[p]) {
		return sizeLimits{}, p, r.errf(ErrUnsupported, p, "table element type %#x", b[p])
	}
	return r.limits(b, p+1, false)
}

// sizeLimits are a table's or memory's size bounds.
type sizeLimits struct {
	min, max uint32
	hasMax   bool
}

// limits checks (flags min [max]) with flags 0 or 1: shared memories (threads) and memory64
// are unsupported.
func (r *rewriter) limits(b []byte, p int, memory bool) (sizeLimits, int, error) {
	var l sizeLimits
	if p >= len(b) {
		return l, p, r.errf(ErrMalformed, p, "truncated limits")
	}
	flags := b[p]
	if flags > 1 {
		if memory {
			return l, p, r.errf(ErrUnsupported, p, "memory limits flags %#x (shared memory or memory64)", flags)
		}
		return l, p, r.errf(ErrMalformed, p, "table limits flags %#x", flags)
	}
	p++
	l.hasMax = flags == 1
	for k := 0; k <= int(flags); k++ {
		v, q, ok := readU32(b, p)
		if !ok {
			return l, p, r.errf(ErrMalformed, p, "bad limit")
		}
		if k == 0 {
			l.min = v
		} else {
			l.max = v
		}
		p = q
	}
	return l, p, nil
}

// tables checks the table section and copies it, capping the tables' maxima when
// Config.MaxTableEntries is set: wazero lets a table grow to 2^32-1 entries of 8 bytes each,
// host memory that no other limit bounds.
func (r *rewriter) tables(hdr, p, end int) error {
	b := r.in[:end]
	n, q, err := r.count(b, p, 3, "table")
	if err != nil {
		return err
	}
	types := make([]byte, n)
	lims := make([]sizeLimits, n)
	var total uint64
	for i := range lims {
		at := q
		if lims[i], q, err = r.tableType(b, q); err != nil {
			return err
		}
		types[i] = b[at]
		if lims[i].hasMax && lims[i].max < lims[i].min {
			return r.errf(ErrMalformed, at, "table[%d]: maximum %d below minimum %d", i, lims[i].max, lims[i].min)
		}
		total += uint64(lims[i].min)
	}
	if q != end {
		return r.errf(ErrMalformed, q, "%d bytes after the last table", end-q)
	}
	limit := r.cfg.MaxTableEntries
	if limit == 0 {
		r.out = append(r.out, r.in[hdr:end]...)
		return nil
	}
	if total > uint64(limit) {
		return r.errf(ErrLimit, p, "tables declare %d initial entries, limit %d entries", total, limit)
	}
	r.out = append(r.out, secTable)
	start := r.open()
	r.out = appendU32(r.out, n)
	headroom := limit - uint32(total)
	for i, l := range lims {
		grow := headroom
		if l.hasMax {
			grow = min(grow, l.max-l.min)
		}
		headroom -= grow
		r.out = append(r.out, types[i], 0x01)
		r.out = appendU32(appendU32(r.out, l.min), l.min+grow)
	}
	return r.close(start)
}

// memories checks the memory section and copies it.
func (r *rewriter) memories(hdr, p, end int) error {
	b := r.in[:end]
	n, q, err := r.count(b, p, 2, "memory")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if _, q, err = r.limits(b, q, true); err != nil {
			return err
		}
	}
	if q != end {
		return r.errf(ErrMalformed, q, "%d bytes after the last memory", end-q)
	}
	r.out = append(r.out, r.in[hdr:end]...)
	return nil
}

// globalSection copies the globals, checking their initialisers, and appends the counter.
func (r *rewriter) globalSection(p, end int) error {
	b := r.in[:end]
	n, p, err := r.count(b, p, 3, "global")
	if err != nil {
		return err
	}
	r.out = append(r.out, secGlobal)
	start := r.open()
	r.out = appendU32(r.out, n+1)
	for i := uint32(0); i < n; i++ {
		if p+2 > end {
			return r.errf(ErrMalformed, p, "global[%d]: truncated", i)
		}
		if !isValType(b[p]) {
			return r.errf(ErrUnsupported, p, "global[%d]: value type %#x", i, b[p])
		}
		if b[p+1] > 1 {
			return r.errf(ErrMalformed, p+1, "global[%d]: mutability %#x", i, b[p+1])
		}
		r.out = append(r.out, b[p], b[p+1])
		if p, err = r.constExpr(b, p+2); err != nil {
			return err
		}
	}
	if p != end {
		return r.errf(ErrMalformed, p, "%d bytes after the last global", end-p)
	}
	r.out = r.appendCounterGlobal(r.out)
	return r.close(start)
}

// funcIndex checks a function index of the input and returns it as it is after the rewrite.
func (r *rewriter) funcIndex(x uint32, at int) (uint32, error) {
	if x >= r.funcs {
		return 0, r.errf(ErrMalformed, at, "function index %d out of range (%d functions)", x, r.funcs)
	}
	if x >= r.funcImports {
		x++
	}
	return x, nil
}

// globalIndex rejects a global index the input does not define. Such a module is invalid, but
// after the rewrite the index would name the counter and the module could refill its budget.
func (r *rewriter) globalIndex(x uint32, at int) error {
	if x >= r.globals {
		return r.errf(ErrMalformed, at, "global index %d out of range (%d globals)", x, r.globals)
	}
	return nil
}

// exports copies the exports with function indices shifted and global indices checked.
func (r *rewriter) exports(p, end int) error {
	b := r.in[:end]
	n, p, err := r.count(b, p, 3, "export")
	if err != nil {
		return err
	}
	r.out = append(r.out, secExport)
	start := r.open()
	r.out = appendU32(r.out, n)
	for i := uint32(0); i < n; i++ {
		_, ne, err := r.vec(b, p, "export name")
		if err != nil {
			return err
		}
		if ne >= end {
			return r.errf(ErrMalformed, ne, "export[%d]: truncated", i)
		}
		kind := b[ne]
		x, q, ok := readU32(b, ne+1)
		if !ok {
			return r.errf(ErrMalformed, ne+1, "export[%d]: bad index", i)
		}
		switch kind {
		case 0x00:
			if x, err = r.funcIndex(x, ne+1); err != nil {
				return err
			}
		case 0x01, 0x02:
		case 0x03:
			if err := r.globalIndex(x, ne+1); err != nil {
				return err
			}
		case 0x04:
			return r.errf(ErrUnsupported, ne, "export[%d]: exception handling (tag export)", i)
		default:
			return r.errf(ErrMalformed, ne, "export[%d]: kind %#x", i, kind)
		}
		r.out = append(r.out, b[p:ne+1]...) // name and kind
		r.out = appendU32(r.out, x)
		p = q
	}
	if p != end {
		return r.errf(ErrMalformed, p, "%d bytes after the last export", end-p)
	}
	return r.close(start)
}

// start rewrites the start function's index.
func (r *rewriter) start(p, end int) error {
	x, q, ok := readU32(r.in[:end], p)
	if !ok || q != end {
		return r.errf(ErrMalformed, p, "want one function index")
	}
	x, err := r.funcIndex(x, p)
	if err != nil {
		return err
	}
	r.out = append(r.out, secStart)
	start := r.open()
	r.out = appendU32(r.out, x)
	return r.close(start)
}

// elements copies the element segments (all eight forms) with function indices shifted.
func (r *rewriter) elements(p, end int) error {
	b := r.in[:end]
	n, p, err := r.count(b, p, 3, "element segment")
	if err != nil {
		return err
	}
	r.out = append(r.out, secElement)
	start := r.open()
	r.out = appendU32(r.out, n)
	for i := uint32(0); i < n; i++ {
		at := p
		flags, q, ok := readU32(b, p)
		if !ok {
			return r.errf(ErrMalformed, p, "element[%d]: bad flags", i)
		}
		if flags > 7 {
			return r.errf(ErrMalformed, p, "element[%d]: flags %d", i, flags)
		}
		r.out = appendU32(r.out, flags)
		p = q
		// Bit 0: passive or declarative; bit 1: explicit table index (active) or declarative
		// (passive); bit 2: expressions instead of function indices.
		active := flags&1 == 0
		if active && flags&2 != 0 {
			x, q, ok := readU32(b, p)
			if !ok {
				return r.errf(ErrMalformed, p, "element[%d]: bad table index", i)
			}
			r.out = appendU32(r.out, x)
			p = q
		}
		if active {
			if p, err = r.constExpr(b, p); err != nil {
				return err
			}
		}
		if flags&3 != 0 { // elemkind or reftype
			if p >= end {
				return r.errf(ErrMalformed, p, "element[%d]: truncated", i)
			}
			if flags&4 == 0 && b[p] != 0x00 {
				return r.errf(ErrMalformed, p, "element[%d]: element kind %#x", i, b[p])
			}
			if flags&4 != 0 && !isRefType(b[p]) {
				return r.errf(ErrUnsupported, p, "element[%d]: reference type %#x", i, b[p])
			}
			r.out = append(r.out, b[p])
			p++
		}
		m, q, err := r.count(b, p, 1, "element item")
		if err != nil {
			return err
		}
		r.out = appendU32(r.out, m)
		p = q
		for j := uint32(0); j < m; j++ {
			if flags&4 != 0 {
				if p, err = r.constExpr(b, p); err != nil {
					return err
				}
				continue
			}
			x, q, ok := readU32(b, p)
			if !ok {
				return r.errf(ErrMalformed, p, "element[%d] (at %#x): bad function index", i, at)
			}
			if x, err = r.funcIndex(x, p); err != nil {
				return err
			}
			r.out = appendU32(r.out, x)
			p = q
		}
	}
	if p != end {
		return r.errf(ErrMalformed, p, "%d bytes after the last element segment", end-p)
	}
	return r.close(start)
}

// dataSection copies the data segments, checking their offset expressions.
func (r *rewriter) dataSection(p, end int) error {
	b := r.in[:end]
	n, p, err := r.count(b, p, 2, "data segment")
	if err != nil {
		return err
	}
	r.out = append(r.out, secData)
	start := r.open()
	r.out = appendU32(r.out, n)
	for i := uint32(0); i < n; i++ {
		flags, q, ok := readU32(b, p)
		if !ok {
			return r.errf(ErrMalformed, p, "data[%d]: bad flags", i)
		}
		r.out = appendU32(r.out, flags)
		switch flags {
		case 0, 2:
			if flags == 2 {
				x, q2, ok := readU32(b, q)
				if !ok {
					return r.errf(ErrMalformed, q, "data[%d]: bad memory index", i)
				}
				r.out = appendU32(r.out, x)
				q = q2
			}
			if q, err = r.constExpr(b, q); err != nil {
				return err
			}
		case 1:
		default:
			return r.errf(ErrMalformed, p, "data[%d]: flags %d", i, flags)
		}
		_, de, err := r.vec(b, q, "data segment")
		if err != nil {
			return err
		}
		r.out = append(r.out, b[q:de]...)
		p = de
	}
	if p != end {
		return r.errf(ErrMalformed, p, "%d bytes after the last data segment", end-p)
	}
	return r.close(start)
}

// constExpr appends the constant expression at b[p:] with ref.func indices shifted and global
// indices checked, and returns the position after its end. Like wazero's decoder it reads
// instructions until end; only those of api.CoreFeaturesV2 are accepted.
func (r *rewriter) constExpr(b []byte, p int) (int, error) {
	flush := p
	for p < len(b) {
		at, op := p, b[p]
		p++
		ok := true
		switch op {
		case 0x0b: // end
			r.out = append(r.out, b[flush:p]...)
			return p, nil
		case 0x41: // i32.const
			p, ok = skipS32(b, p)
		case 0x42: // i64.const
			p, ok = skipS64(b, p)
		case 0x43: // f32.const
			p += 4
			ok = p <= len(b)
		case 0x44: // f64.const
			p += 8
			ok = p <= len(b)
		case 0x23: // global.get
			var x uint32
			if x, p, ok = readU32(b, p); ok {
				if err := r.globalIndex(x, at+1); err != nil {
					return p, err
				}
			}
		case 0xd0: // ref.null
			if ok = p < len(b); ok {
				if !isRefType(b[p]) {
					return p, r.errf(ErrUnsupported, p, "ref.null type %#x in constant expression", b[p])
				}
				p++
			}
		case 0xd2: // ref.func
			var x uint32
			if x, p, ok = readU32(b, p); ok {
				y, err := r.funcIndex(x, at+1)
				if err != nil {
					return p, err
				}
				r.out = append(r.out, b[flush:at+1]...)
				r.out = appendU32(r.out, y)
				flush = p
			}
		case 0xfd: // v128.const
			if p >= len(b) || b[p] != 0x0c {
				return p, r.errf(ErrUnsupported, at, "vector instruction in constant expression")
			}
			p += 17
			ok = p <= len(b)
		default:
			return p, r.errf(ErrUnsupported, at, "instruction %#x in constant expression", op)
		}
		if !ok {
			return p, r.errf(ErrMalformed, at, "truncated or bad immediate of %#x in constant expression", op)
		}
	}
	return p, r.errf(ErrMalformed, p, "constant expression without end")
}

// custom copies a custom section, rewriting the name section and dropping DWARF sections
// (".debug_*"): they address code by byte offset, which the rewrite moves, so wazero would print
// wrong source lines in stack traces. Function names, from the name section, stay right.
func (r *rewriter) custom(hdr, p, end int) error {
	b := r.in[:end]
	ns, ne, err := r.vec(b, p, "custom section name")
	if err != nil {
		return err
	}
	switch name := b[ns:ne]; {
	case string(name) == "name":
		r.section = "name"
		r.nameSection(p, ne, end)
	case bytes.HasPrefix(name, []byte(".debug_")):
	default:
		r.out = append(r.out, r.in[hdr:end]...)
	}
	return nil
}
