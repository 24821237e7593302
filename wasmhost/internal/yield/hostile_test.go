package yield

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// compiles reports whether wazero (default features) compiles wasm.
func compiles(rt wazero.Runtime, wasm []byte) bool {
	cm, err := rt.CompileModule(context.Background(), wasm)
	if err != nil {
		return false
	}
	cm.Close(context.Background())
	return true
}

// TestTruncation cuts every hand-built module at every byte. Each prefix is
// either rejected as malformed or, when it ends at a section boundary,
// instrumented into a module wazero compiles whenever it compiles the prefix.
func TestTruncation(t *testing.T) {
	rt := wazero.NewRuntime(context.Background())
	defer rt.Close(context.Background())
	for name, wasm := range testModules() {
		accepted := 0
		for n := range len(wasm) {
			out, err := Instrument(wasm[:n], testConfig)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("%s[:%d]: %v, want ErrMalformed", name, n, err)
				}
				continue
			}
			accepted++
			if compiles(rt, wasm[:n]) && !compiles(rt, out) {
				t.Errorf("%s[:%d]: wazero compiles the prefix but not its instrumented copy", name, n)
			}
		}
		if accepted > 12 { // at most one prefix per section boundary
			t.Errorf("%s: %d prefixes accepted", name, accepted)
		}
	}
}

// TestTruncatedGoGuest cuts a real guest at a few hundred offsets.
func TestTruncatedGoGuest(t *testing.T) {
	wasm := goGuestForFuzz(t)
	for n := 0; n < len(wasm); n += len(wasm)/300 + 1 {
		if _, err := Instrument(wasm[:n], testConfig); !errors.Is(err, ErrMalformed) {
			t.Fatalf("[:%d]: %v, want ErrMalformed", n, err)
		}
	}
}

// oneFunc is a module with one function of type () -> (), whose body holds
// the raw instructions, and the given extra sections (placed before code).
func oneFunc(body []byte, extra ...section) []byte {
	secs := []section{typeSec(funcType(nil, nil)), functionSec(0)}
	secs = append(secs, extra...)
	return module(append(secs, codeSec(cat(uleb(nil, uint64(len(body)+2)), []byte{0}, body, []byte{opEnd})))...)
}

// rawSection is a section with an arbitrary claimed size and content.
func rawSection(id byte, size uint32, content ...byte) []byte {
	return cat([]byte{id}, uleb(nil, uint64(size)), content)
}

func TestHugeClaims(t *testing.T) {
	header := module()
	maxU32 := uleb(nil, 0xffffffff)
	cases := map[string]struct {
		wasm []byte
		want error
	}{
		"section size":       {cat(header, rawSection(1, 0xffffffff, 0)), ErrMalformed},
		"type count":         {module(section{1, maxU32}), ErrMalformed},
		"param count":        {module(section{1, cat(uleb(nil, 1), []byte{0x60}, maxU32)}), ErrMalformed},
		"import count":       {module(section{2, maxU32}), ErrMalformed},
		"import name length": {module(section{2, cat(uleb(nil, 1), maxU32)}), ErrMalformed},
		"function count":     {module(typeSec(funcType(nil, nil)), section{3, maxU32}), ErrMalformed},
		"global count":       {module(section{6, maxU32}), ErrMalformed},
		"export count":       {module(section{7, maxU32}), ErrMalformed},
		"element count":      {module(section{9, maxU32}), ErrMalformed},
		"element items": {module(typeSec(funcType(nil, nil)), functionSec(0),
			section{9, cat(uleb(nil, 1), uleb(nil, 1), []byte{0}, maxU32)}, codeSec(code(nil))), ErrMalformed},
		"code count":   {module(typeSec(funcType(nil, nil)), functionSec(0), section{10, maxU32}), ErrMalformed},
		"body size":    {module(typeSec(funcType(nil, nil)), functionSec(0), section{10, cat(uleb(nil, 1), maxU32)}), ErrMalformed},
		"data count":   {module(section{11, maxU32}), ErrMalformed},
		"data length":  {module(memorySec(memory(1)), section{11, cat(uleb(nil, 1), uleb(nil, 1), maxU32)}), ErrMalformed},
		"custom name":  {module(section{0, maxU32}), ErrMalformed},
		"br_table":     {oneFunc(cat(op(opBlock, blockEmpty), i32c(0), op(opBrTable), maxU32, op(opEnd))), ErrMalformed},
		"table count":  {module(section{4, maxU32}), ErrMalformed},
		"memory count": {module(section{5, maxU32}), ErrMalformed},
		// wazero would allocate one byte per local while decoding: 4 GiB.
		"locals": {module(typeSec(funcType(nil, nil)), functionSec(0),
			codeSec(vec1(cat(uleb(nil, 1), maxU32, []byte{i32, opEnd})))), ErrUnsupported},
		"locals summed": {module(typeSec(funcType(nil, nil)), functionSec(0),
			codeSec(vec1(cat(uleb(nil, 2), uleb(nil, 30000), []byte{i32}, uleb(nil, 30000), []byte{i64, opEnd})))), ErrUnsupported},
	}
	for name, c := range cases {
		start := time.Now()
		_, err := Instrument(c.wasm, testConfig)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%s: took %v", name, d)
		}
	}

	// A name section claiming 2^32-1 names is dropped, not an error.
	named := module(typeSec(funcType(nil, nil)), functionSec(0), codeSec(code(nil)),
		customSection("name", cat([]byte{1}, vec1(maxU32))))
	out, err := Instrument(named, testConfig)
	if err != nil || strings.Contains(string(out), "name") {
		t.Errorf("huge name map: err %v, section kept %v", err, strings.Contains(string(out), "name"))
	}
}

// TestDeepNesting: nesting depth costs no recursion and memory linear in it.
func TestDeepNesting(t *testing.T) {
	const depth = 100000
	var body []byte
	for range depth {
		body = append(body, opLoop, blockEmpty)
	}
	for range depth {
		body = append(body, opEnd)
	}
	out, err := Instrument(oneFunc(body), testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < depth*20 {
		t.Errorf("output of %d bytes: not every loop got its yield point", len(out))
	}
}

// TestNewIndicesUnreachable: the original module must not be able to name
// the counter global (index = its global count) nor the yield import.
// Such modules are invalid, but after the rewrite they would be valid and
// could refill their own budget.
func TestNewIndicesUnreachable(t *testing.T) {
	g1 := globalSec(global(i32, true, i32c(0))) // one global: index 1 would be the counter
	type1 := typeSec(funcType(nil, nil))
	// Each case builds a module naming index x; limit is the first index
	// out of range, so build(limit) must fail and build(limit-1) pass.
	cases := map[string]struct {
		limit uint32
		build func(x uint32) []byte
	}{
		"global.get":             {1, func(x uint32) []byte { return oneFunc(cat(globalGet(x), op(opDrop)), g1) }},
		"global.set":             {1, func(x uint32) []byte { return oneFunc(cat(i32c(99), globalSet(x)), g1) }},
		"global.set, no globals": {0, func(x uint32) []byte { return oneFunc(cat(i32c(99), globalSet(x))) }},
		"global export": {1, func(x uint32) []byte {
			return module(type1, functionSec(0), g1, exportSec(export("c", 3, x)), codeSec(code(nil)))
		}},
		// One imported and two defined globals: the counter would be 3.
		"global init": {3, func(x uint32) []byte {
			return module(importSec(importGlobal("env", "g", i32, false)),
				globalSec(global(i32, true, globalGet(x)), global(i32, true, i32c(0))))
		}},
		"elem offset": {1, func(x uint32) []byte {
			return module(type1, functionSec(0), tableSec(table(fref, 1)), g1,
				elemSec(cat(uleb(nil, 0), expr(globalGet(x)), u32vec(0))), codeSec(code(nil)))
		}},
		"elem expr": {1, func(x uint32) []byte {
			return module(type1, functionSec(0), g1,
				elemSec(cat(uleb(nil, 5), op(fref), vec(expr(globalGet(x))))), codeSec(code(nil)))
		}},
		"data offset": {1, func(x uint32) []byte {
			return module(memorySec(memory(1)), g1, dataSec(cat(uleb(nil, 0), expr(globalGet(x)), str("x"))))
		}},
		"call":     {1, func(x uint32) []byte { return oneFunc(call(x)) }},
		"ref.func": {1, func(x uint32) []byte { return oneFunc(cat(refFunc(x), op(opDrop))) }},
		"start": {1, func(x uint32) []byte {
			return module(type1, functionSec(0), startSec(x), codeSec(code(nil)))
		}},
		"func export": {1, func(x uint32) []byte {
			return module(type1, functionSec(0), exportSec(exportFunc("f", x)), codeSec(code(nil)))
		}},
		"elem func": {1, func(x uint32) []byte {
			return module(type1, functionSec(0), elemSec(cat(uleb(nil, 3), op(0), u32vec(x))), codeSec(code(nil)))
		}},
		"elem ref.func": {1, func(x uint32) []byte {
			return module(type1, functionSec(0), elemSec(cat(uleb(nil, 7), op(fref), vec(expr(refFunc(x))))), codeSec(code(nil)))
		}},
		"function type": {1, func(x uint32) []byte { return module(type1, functionSec(x), codeSec(code(nil))) }},
		"import type":   {1, func(x uint32) []byte { return module(type1, importSec(importFunc("env", "f", x))) }},
		"block type":    {1, func(x uint32) []byte { return oneFunc(cat(op(opBlock), uleb(nil, uint64(x)), op(opEnd))) }},
		"call_indirect": {1, func(x uint32) []byte {
			return module(type1, functionSec(0), tableSec(table(fref, 1)), codeSec(code(nil, i32c(0), callIndirect(x, 0))))
		}},
	}
	for name, c := range cases {
		_, err := Instrument(c.build(c.limit), testConfig)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("%s %d: %v, want ErrMalformed: ... out of range", name, c.limit, err)
		}
		if c.limit > 0 {
			if _, err := Instrument(c.build(c.limit-1), testConfig); err != nil {
				t.Errorf("%s %d: %v", name, c.limit-1, err)
			}
		}
	}
}

func TestErrorNamesWhere(t *testing.T) {
	// func 1 (after one import) does global.get 1 with one global.
	wasm := module(
		typeSec(funcType(nil, nil)),
		importSec(importFunc("env", "f", 0)),
		functionSec(0),
		globalSec(global(i32, true, i32c(0))),
		codeSec(code(nil, op(0x01), globalGet(1), op(opDrop))),
	)
	_, err := Instrument(wasm, testConfig)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%v: not an *Error", err)
	}
	at := strings.LastIndex(string(wasm), string(globalGet(1))) + 1 // the index
	if e.Section != "code" || e.Func != 1 || e.Offset != at {
		t.Errorf("%+v, want section code, func 1, offset %d", e, at)
	}
	want := "yield: code section: func[1]: offset"
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "global index 1 out of range (1 globals)") {
		t.Errorf("message %q", err)
	}
}

func TestUnsupported(t *testing.T) {
	cases := map[string][]byte{
		"version 2":          cat([]byte{0, 'a', 's', 'm', 0x0d, 0, 1, 0}),
		"threads":            oneFunc(cat(i32c(0), []byte{0xfe, 0x10, 2, 0}, op(opDrop)), memorySec(memory(1))),
		"return_call":        oneFunc(cat([]byte{0x12}, uleb(nil, 0))),
		"try_table":          oneFunc([]byte{0x1f, blockEmpty, 0, opEnd}),
		"throw":              oneFunc([]byte{0x08, 0}),
		"legacy try":         oneFunc([]byte{0x06, blockEmpty, opEnd}),
		"call_ref":           oneFunc([]byte{0x14, 0}),
		"tag section":        module(typeSec(funcType(nil, nil)), section{13, cat(uleb(nil, 1), []byte{0, 0})}),
		"tag import":         module(typeSec(funcType(nil, nil)), importSec(cat(str("env"), str("t"), []byte{4, 0, 0}))),
		"shared memory":      module(section{5, []byte{1, 3, 1, 1}}),
		"memory64":           module(section{5, []byte{1, 4, 1}}),
		"table init expr":    module(section{4, cat([]byte{1, 0x40, 0x00, fref, 0, 1}, expr(op(opRefNull, fref)))}),
		"typed ref local":    module(typeSec(funcType(nil, nil)), functionSec(0), codeSec(cat(uleb(nil, 5), []byte{1, 1, 0x63, 0x70, opEnd}))),
		"typed ref block":    oneFunc([]byte{opBlock, 0x63, 0x70, op(opRefNull, fref)[0], fref, opEnd, opDrop}),
		"ref.null type":      oneFunc([]byte{opRefNull, 0x00, opDrop}),
		"select 2 types":     oneFunc(cat(i32c(1), i32c(2), i32c(0), []byte{opSelectT, 2, i32, i32}, op(opDrop))),
		"extended const":     module(globalSec(global(i32, false, i32c(1), i32c(2), op(opI32Add)))),
		"misc 18":            oneFunc(misc(18)),
		"simd 0x100":         oneFunc(cat(i32c(0), op(opSIMD, 0x80, 0x02), op(opDrop)), memorySec(memory(1))),
		"simd unassigned":    oneFunc(cat(op(opSIMD, 0x9a, 0x01))),
		"simd overlong 0x0c": oneFunc(cat(op(opSIMD, 0x8c, 0x00), make([]byte, 16), op(opDrop))),
		"gc type":            module(section{1, []byte{1, 0x5e, 0x7f, 0x01}}),
		"exnref global":      module(globalSec(global(0x69, false, op(opRefNull, 0x69)))),
		"yield imported":     module(typeSec(funcType(nil, []byte{i32})), importSec(importFunc("nylon_sys", "yield", 0))),
		"multi-memory":       oneFunc(cat(op(0x3f, 0x01), op(opDrop)), memorySec(memory(1))),
	}
	for name, wasm := range cases {
		if _, err := Instrument(wasm, testConfig); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// TestSIMDTable checks every SIMD opcode byte against its class: assigned
// opcodes decode (here with zero immediates), unassigned ones and encodings
// wazero reads differently are rejected.
func TestSIMDTable(t *testing.T) {
	unassigned := map[byte]bool{0x9a: true, 0xa2: true, 0xa5: true, 0xa6: true, 0xaf: true, 0xb0: true,
		0xb2: true, 0xb3: true, 0xb4: true, 0xbb: true, 0xc2: true, 0xc5: true, 0xc6: true, 0xcf: true,
		0xd0: true, 0xd2: true, 0xd3: true, 0xd4: true, 0xe2: true, 0xee: true}
	assigned := 0
	for v := range 256 {
		sub := byte(v)
		enc := []byte{opSIMD, sub}
		if sub >= 0x80 {
			enc = append(enc, 0x01)
		}
		imm := map[uint8]int{simdNone: 0, simdMemarg: 2, simdMemargLane: 3, simdLane: 1, simd16: 16, simdInvalid: 0}[simdImmediates[sub]]
		_, err := Instrument(oneFunc(cat(enc, make([]byte, imm))), testConfig)
		if unassigned[sub] {
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("SIMD %#x: %v, want ErrUnsupported", sub, err)
			}
			continue
		}
		assigned++
		// Only the boundaries are checked here; wazero validates the types.
		if err != nil {
			t.Errorf("SIMD %#x: %v", sub, err)
		}
		// One immediate byte too few must not be read past the body's end.
		if imm > 0 {
			if _, err := Instrument(oneFunc(cat(enc, make([]byte, imm-1))), testConfig); err == nil {
				t.Errorf("SIMD %#x with a short immediate accepted", sub)
			}
		}
	}
	if assigned != 236 {
		t.Errorf("%d SIMD opcodes, want wazero's 236", assigned)
	}
}
