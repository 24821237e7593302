package wasmhost_test

// A tiny WebAssembly binary encoder, enough to hand-build the modules the
// tests need (ABI violations, traps, loops) without external tools. Each
// builder below shows its module in WebAssembly text format.

const (
	i32 byte = 0x7f
	i64 byte = 0x7e
)

// Instructions (opcodes and immediates).
const (
	opUnreachable = 0x00
	opLoop        = 0x03
	opBlockVoid   = 0x40
	opEnd         = 0x0b
	opBr          = 0x0c
	opCall        = 0x10
	opDrop        = 0x1a
	opLocalGet    = 0x20
	opI32Const    = 0x41
)

type wasmType struct{ params, results []byte }

type wasmImport struct {
	module, name string
	typ          uint32
}

type wasmFunc struct {
	typ  uint32
	body []byte // instructions, without locals and the final end
}

type wasmExport struct {
	name string
	kind byte // 0 func, 2 memory
	idx  uint32
}

type wasmData struct {
	offset uint32
	bytes  []byte
}

type wasmModule struct {
	types   []wasmType
	imports []wasmImport
	funcs   []wasmFunc
	table   []uint32 // nil: none; {min} or {min, max} funcref entries
	memory  []uint32 // nil: none; {min} or {min, max} pages
	exports []wasmExport
	data    []wasmData
}

func (m *wasmModule) typ(params, results []byte) uint32 {
	for i, t := range m.types {
		if string(t.params) == string(params) && string(t.results) == string(results) {
			return uint32(i)
		}
	}
	m.types = append(m.types, wasmType{params, results})
	return uint32(len(m.types) - 1)
}

// importFunc adds an imported function and returns its index. Imports must
// come before defined functions, whose indices follow them.
func (m *wasmModule) importFunc(module, name string, params, results []byte) uint32 {
	if len(m.funcs) > 0 {
		panic("wasmModule: add imports before functions")
	}
	m.imports = append(m.imports, wasmImport{module, name, m.typ(params, results)})
	return uint32(len(m.imports) - 1)
}

// fn adds a function with body and returns its index.
func (m *wasmModule) fn(params, results []byte, body ...byte) uint32 {
	m.funcs = append(m.funcs, wasmFunc{m.typ(params, results), body})
	return uint32(len(m.imports) + len(m.funcs) - 1)
}

func (m *wasmModule) exportFunc(name string, idx uint32) {
	m.exports = append(m.exports, wasmExport{name, 0, idx})
}

func (m *wasmModule) exportMemory(name string) {
	m.exports = append(m.exports, wasmExport{name, 2, 0})
}

func (m *wasmModule) bytes() []byte {
	out := []byte{0x00, 'a', 's', 'm', 1, 0, 0, 0}
	section := func(id byte, body []byte) {
		out = append(out, id)
		out = uleb(out, uint64(len(body)))
		out = append(out, body...)
	}
	if len(m.types) > 0 {
		b := uleb(nil, uint64(len(m.types)))
		for _, t := range m.types {
			b = append(b, 0x60)
			b = vecBytes(b, t.params)
			b = vecBytes(b, t.results)
		}
		section(1, b)
	}
	if len(m.imports) > 0 {
		b := uleb(nil, uint64(len(m.imports)))
		for _, im := range m.imports {
			b = name(b, im.module)
			b = name(b, im.name)
			b = append(b, 0x00)
			b = uleb(b, uint64(im.typ))
		}
		section(2, b)
	}
	if len(m.funcs) > 0 {
		b := uleb(nil, uint64(len(m.funcs)))
		for _, f := range m.funcs {
			b = uleb(b, uint64(f.typ))
		}
		section(3, b)
	}
	limits := func(b []byte, l []uint32) []byte {
		if len(l) == 1 {
			return uleb(append(b, 0x00), uint64(l[0]))
		}
		return uleb(uleb(append(b, 0x01), uint64(l[0])), uint64(l[1]))
	}
	if m.table != nil {
		section(4, limits([]byte{1, 0x70}, m.table))
	}
	if m.memory != nil {
		section(5, limits([]byte{1}, m.memory))
	}
	if len(m.exports) > 0 {
		b := uleb(nil, uint64(len(m.exports)))
		for _, e := range m.exports {
			b = name(b, e.name)
			b = append(b, e.kind)
			b = uleb(b, uint64(e.idx))
		}
		section(7, b)
	}
	if len(m.funcs) > 0 {
		b := uleb(nil, uint64(len(m.funcs)))
		for _, f := range m.funcs {
			body := append([]byte{0}, f.body...) // no locals
			body = append(body, opEnd)
			b = uleb(b, uint64(len(body)))
			b = append(b, body...)
		}
		section(10, b)
	}
	if len(m.data) > 0 {
		b := uleb(nil, uint64(len(m.data)))
		for _, d := range m.data {
			b = append(b, 0x00, opI32Const)
			b = sleb(b, int64(d.offset))
			b = append(b, opEnd)
			b = vecBytes(b, d.bytes)
		}
		section(11, b)
	}
	return out
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

func vecBytes(b, v []byte) []byte    { return append(uleb(b, uint64(len(v))), v...) }
func name(b []byte, s string) []byte { return vecBytes(b, []byte(s)) }

// i32Const encodes "i32.const v".
func i32Const(v int32) []byte { return sleb([]byte{opI32Const}, int64(v)) }

// call encodes "call idx".
func call(idx uint32) []byte { return uleb([]byte{opCall}, uint64(idx)) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// abiSpec describes a hand-built module that follows ABI v1 unless told
// otherwise.
type abiSpec struct {
	phases int32
	// handle is nylon_handle's body (params phase, event; one i32 result).
	// It may call the "nylon" imports at the indices in nylonFuncs.
	handle func(imp nylonFuncs) []byte
	data   []wasmData
	// initialize is _initialize's body (empty if nil).
	initialize []byte
	// memory and table are the limits of the memory ({1} if nil) and of a
	// funcref table (none if nil).
	memory, table []uint32

	// Deviations from the ABI.
	extraImports []wasmImport // with their types' params/results in extraTypes
	extraTypes   []wasmType
	skipExport   string // leave out this export
	handleSig    *wasmType
	noMemory     bool
}

// nylonFuncs are the function indices of the host imports.
type nylonFuncs struct{ read, write, log uint32 }

// buildABI builds the module described by s:
//
//	(module
//	  (import "nylon" "read"  (func $read  (param i32 i32 i32 i32 i32) (result i32)))
//	  (import "nylon" "write" (func $write (param i32 i32 i32 i32 i32) (result i32)))
//	  (import "nylon" "log"   (func $log   (param i32 i32 i32)))
//	  (table <table> funcref)                                   ;; if table is set
//	  (memory (export "memory") <memory, default 1>)
//	  (func (export "nylon_abi_v1"))
//	  (func (export "nylon_phases") (result i32) (i32.const <phases>))
//	  (func (export "nylon_handle") (param i32 i32) (result i32) <handle>)
//	  (func (export "_initialize") <initialize>)
//	  (data (i32.const <offset>) "<bytes>") ...)
func buildABI(s abiSpec) []byte {
	var m wasmModule
	five := []byte{i32, i32, i32, i32, i32}
	imp := nylonFuncs{
		read:  m.importFunc("nylon", "read", five, []byte{i32}),
		write: m.importFunc("nylon", "write", five, []byte{i32}),
		log:   m.importFunc("nylon", "log", []byte{i32, i32, i32}, nil),
	}
	for i, x := range s.extraImports {
		t := s.extraTypes[i]
		m.importFunc(x.module, x.name, t.params, t.results)
	}
	if !s.noMemory {
		m.memory = []uint32{1}
		if s.memory != nil {
			m.memory = s.memory
		}
	}
	m.table = s.table
	export := func(name string, idx uint32) {
		if name != s.skipExport {
			m.exportFunc(name, idx)
		}
	}
	if !s.noMemory && s.skipExport != "memory" {
		m.exportMemory("memory")
	}
	export("nylon_abi_v1", m.fn(nil, nil))
	export("nylon_phases", m.fn(nil, []byte{i32}, i32Const(s.phases)...))
	handleSig := wasmType{[]byte{i32, i32}, []byte{i32}}
	if s.handleSig != nil {
		handleSig = *s.handleSig
	}
	var body []byte
	if s.handle != nil {
		body = s.handle(imp)
	} else {
		body = i32Const(0)
	}
	export("nylon_handle", m.fn(handleSig.params, handleSig.results, body...))
	export("_initialize", m.fn(nil, nil, s.initialize...))
	m.data = s.data
	return m.bytes()
}

// Hand-built modules used by several tests. Request_filter only unless said.

// nextModule answers Next:
//
//	(func (export "nylon_handle") (param i32 i32) (result i32) (i32.const 0))
func nextModule() []byte { return buildABI(abiSpec{phases: 1 << 1}) }

// loopModule spins forever in nylon_handle:
//
//	(func (export "nylon_handle") (param i32 i32) (result i32)
//	  (loop $l (br $l)) (unreachable))
func loopModule() []byte {
	return buildABI(abiSpec{phases: 1 << 1, handle: func(nylonFuncs) []byte {
		return []byte{opLoop, opBlockVoid, opBr, 0, opEnd, opUnreachable}
	}})
}

// initLoopModule spins forever in _initialize, so that a validation or an
// instance start runs until its deadline or its context ends:
//
//	(func (export "_initialize") (loop $l (br $l)))
func initLoopModule() []byte {
	return buildABI(abiSpec{phases: 1 << 1,
		handle:     func(nylonFuncs) []byte { return i32Const(0) },
		initialize: []byte{opLoop, opBlockVoid, opBr, 0, opEnd},
	})
}

// trapModule traps in nylon_handle:
//
//	(func (export "nylon_handle") (param i32 i32) (result i32) (unreachable))
func trapModule() []byte {
	return buildABI(abiSpec{phases: 1 << 1, handle: func(nylonFuncs) []byte {
		return []byte{opUnreachable}
	}})
}

// helloModule sets response header "x-hello: world" and ends the request:
//
//	(data (i32.const 0) "x-hello")
//	(data (i32.const 16) "world")
//	(func (export "nylon_handle") (param i32 i32) (result i32)
//	  (drop (call $write (i32.const 100) (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 5)))
//	  (i32.const 1))
func helloModule() []byte {
	return buildABI(abiSpec{
		phases: 1 << 1,
		data:   []wasmData{{0, []byte("x-hello")}, {16, []byte("world")}},
		handle: func(imp nylonFuncs) []byte {
			return cat(i32Const(100), i32Const(0), i32Const(7), i32Const(16), i32Const(5), call(imp.write), []byte{opDrop}, i32Const(1))
		},
	})
}
