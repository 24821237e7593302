package yield

import "unicode/utf8"

// Name section subsections (https://webassembly.github.io/spec/core/appendix/custom.html and
// the extended-name-section proposal).
const (
	nameModule    = 0
	nameFunctions = 1
	nameLocals    = 2
	nameLabels    = 3
	nameLastKnown = 11 // types, tables, memories, globals, elems, datas, fields, tags
)

// nameSection rewrites the "name" custom section whose content (after the section name) is
// r.in[p:end]; nameStart is where the section name's length starts. Function indices in the
// function, local and label name maps are shifted; subsections indexing other spaces are copied;
// unknown ones are dropped. The section is only debugging information, so a malformed one is
// dropped rather than failing the module: nothing is written for it.
//
// The rewritten section is also well-formed by construction, which matters because wazero
// allocates name maps from their declared counts before reading them.
func (r *rewriter) nameSection(nameStart, p, end int) {
	mark := len(r.out)
	if !r.names(nameStart, p, end) {
		r.out = r.out[:mark]
	}
}

func (r *rewriter) names(nameStart, p, end int) bool {
	b := r.in[:end]
	r.out = append(r.out, secCustom)
	secStart := r.open()
	r.out = append(r.out, b[nameStart:p]...)
	for p < end {
		id := b[p]
		size, q, ok := readU32(b, p+1)
		if !ok || uint64(size) > uint64(end-q) {
			return false
		}
		subEnd := q + int(size)
		sub := b[:subEnd]
		switch {
		case id == nameFunctions:
			r.out = append(r.out, id)
			start := r.open()
			if !r.nameMap(sub, q, true) || r.close(start) != nil {
				return false
			}
		case id == nameLocals || id == nameLabels:
			r.out = append(r.out, id)
			start := r.open()
			if !r.indirectNameMap(sub, q) || r.close(start) != nil {
				return false
			}
		case id == nameModule:
			s, e, ok := nameAt(sub, q)
			if !ok || e != subEnd || !utf8.Valid(sub[s:e]) {
				return false
			}
			r.out = append(r.out, b[p:subEnd]...)
		case id <= nameLastKnown:
			r.out = append(r.out, b[p:subEnd]...)
		}
		p = subEnd
	}
	return r.close(secStart) == nil
}

// nameMap copies a name map (vec(index name)) that must fill b[p:] exactly, shifting function
// indices if shift.
func (r *rewriter) nameMap(b []byte, p int, shift bool) bool {
	p, ok := r.nameMapAt(b, p, shift)
	return ok && p == len(b)
}

func (r *rewriter) nameMapAt(b []byte, p int, shift bool) (int, bool) {
	n, p, ok := readU32(b, p)
	if !ok || uint64(n)*2 > uint64(len(b)-p) {
		return p, false
	}
	r.out = appendU32(r.out, n)
	for i := uint32(0); i < n; i++ {
		x, q, ok := readU32(b, p)
		if !ok {
			return p, false
		}
		if shift {
			if x, ok = r.shiftName(x); !ok {
				return p, false
			}
		}
		s, e, ok := nameAt(b, q)
		if !ok || !utf8.Valid(b[s:e]) {
			return p, false
		}
		r.out = appendU32(r.out, x)
		r.out = append(r.out, b[q:e]...)
		p = e
	}
	return p, true
}

// indirectNameMap copies vec(funcidx namemap) (local or label names) that must fill b[p:].
func (r *rewriter) indirectNameMap(b []byte, p int) bool {
	n, p, ok := readU32(b, p)
	if !ok || uint64(n)*2 > uint64(len(b)-p) {
		return false
	}
	r.out = appendU32(r.out, n)
	for i := uint32(0); i < n; i++ {
		x, q, ok := readU32(b, p)
		if !ok {
			return false
		}
		if x, ok = r.shiftName(x); !ok {
			return false
		}
		r.out = appendU32(r.out, x)
		if p, ok = r.nameMapAt(b, q, false); !ok {
			return false
		}
	}
	return p == len(b)
}

// shiftName moves a function index in the name section like every other function index. Names
// of functions the module does not have are kept (they name nothing either way), unless the
// index cannot move.
func (r *rewriter) shiftName(x uint32) (uint32, bool) {
	if x < r.funcImports {
		return x, true
	}
	if x == ^uint32(0) {
		return 0, false
	}
	return x + 1, true
}

// nameAt returns the bounds of the name (vec(byte)) at b[p:].
func nameAt(b []byte, p int) (start, end int, ok bool) {
	l, q, ok := readU32(b, p)
	if !ok || uint64(l) > uint64(len(b)-q) {
		return 0, 0, false
	}
	return q, q + int(l), true
}
