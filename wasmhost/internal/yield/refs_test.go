package yield

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// refsModule points at functions past the shift from every place a
// function index can be: calls, ref.func in code and in a global, element
// segments of all eight forms, exports and the start function.
//
//	(type $r (func (result i32)))                                   ;; 0
//	(type $t (func (param i32) (result i32)))                       ;; 1
//	(type $v (func))                                                ;; 2
//	(import "env" "imp" (func $imp (result i32)))                   ;; func 0: 1000
//	(import "env" "g" (global $g i32))                              ;; global 0: 7
//	(func $f1 (result i32) (i32.const 1)) ... (func $f9 (result i32) (i32.const 9))  ;; funcs 1-9
//	(func $t0 (param i32) (result i32) (call_indirect 0 (type $r) (local.get 0)))    ;; 10
//	(func $t1 (param i32) (result i32) (call_indirect 1 (type $r) (local.get 0)))    ;; 11
//	(func $init (table.init 0 4 (i32.const 10) (i32.const 0) (i32.const 1))          ;; 12
//	            (table.init 0 5 (i32.const 11) (i32.const 0) (i32.const 1)))
//	(func $ref7 (result i32) (table.set 0 (i32.const 12) (ref.func $f7)) (call_indirect 0 (type $r) (i32.const 12)))  ;; 13
//	(func $ref8 (result i32) (table.set 0 (i32.const 13) (ref.func $f8)) (call_indirect 0 (type $r) (i32.const 13)))  ;; 14
//	(func $refg (result i32) (table.set 0 (i32.const 14) (global.get $gref)) (call_indirect 0 (type $r) (i32.const 14)))  ;; 15
//	(func $startf (global.set $started (i32.const 42)))             ;; 16
//	(func $started (result i32) (global.get $started))              ;; 17
//	(table 16 funcref) (table 8 funcref)
//	(global $gref funcref (ref.func $f9))                           ;; global 1
//	(global $started (mut i32) (i32.const 0))                       ;; global 2
//	(export "f1" (func $f1)) ... (export "f9" (func $f9)) (export "imp" (func $imp))
//	(export "t0" ...) (export "t1" ...) (export "init" ...) (export "ref7" ...) (export "ref8" ...)
//	(export "refg" ...) (export "started" ...)
//	(start $startf)
//	(elem (i32.const 0) func $f1 $imp)                              ;; flags 0
//	(elem (table 1) (i32.const 0) func $f2)                         ;; flags 2
//	(elem (i32.const 2) funcref (ref.func $f3) (ref.null func))     ;; flags 4
//	(elem (table 1) (i32.const 1) funcref (ref.func $f4))           ;; flags 6
//	(elem func $f5)                                                 ;; flags 1, passive: segment 4
//	(elem funcref (ref.func $f6))                                   ;; flags 5, passive: segment 5
//	(elem declare func $f7)                                         ;; flags 3
//	(elem declare funcref (ref.func $f8))                           ;; flags 7
//	(elem (global.get $g) func $f9)                                 ;; flags 0, offset 7
func refsModule() []byte {
	var funcs []uint32
	var bodies [][]byte
	for k := int32(1); k <= 9; k++ {
		funcs = append(funcs, 0)
		bodies = append(bodies, code(nil, i32c(k)))
	}
	funcs = append(funcs, 1, 1, 2, 0, 0, 0, 2, 0)
	viaTable := func(slot int32, ref []byte) []byte {
		return code(nil, i32c(slot), ref, op(opTableSet, 0), i32c(slot), callIndirect(0, 0))
	}
	bodies = append(bodies,
		code(nil, localGet(0), callIndirect(0, 0)),
		code(nil, localGet(0), callIndirect(0, 1)),
		code(nil,
			i32c(10), i32c(0), i32c(1), misc(12, 4, 0),
			i32c(11), i32c(0), i32c(1), misc(12, 5, 0)),
		viaTable(12, refFunc(7)),
		viaTable(13, refFunc(8)),
		viaTable(14, globalGet(1)),
		code(nil, i32c(42), globalSet(2)),
		code(nil, globalGet(2)),
	)
	var exports [][]byte
	for k := uint32(1); k <= 9; k++ {
		exports = append(exports, exportFunc("f"+string(rune('0'+k)), k))
	}
	exports = append(exports, exportFunc("imp", 0), exportFunc("t0", 10), exportFunc("t1", 11),
		exportFunc("init", 12), exportFunc("ref7", 13), exportFunc("ref8", 14), exportFunc("refg", 15),
		exportFunc("started", 17))
	refNull := op(opRefNull, fref)
	return module(
		typeSec(funcType(nil, []byte{i32}), funcType([]byte{i32}, []byte{i32}), funcType(nil, nil)),
		importSec(importFunc("env", "imp", 0), importGlobal("env", "g", i32, false)),
		functionSec(funcs...),
		tableSec(table(fref, 16), table(fref, 8)),
		globalSec(global(fref, false, refFunc(9)), global(i32, true, i32c(0))),
		exportSec(exports...),
		startSec(16),
		elemSec(
			cat(uleb(nil, 0), expr(i32c(0)), u32vec(1, 0)),
			cat(uleb(nil, 2), uleb(nil, 1), expr(i32c(0)), op(0x00), u32vec(2)),
			cat(uleb(nil, 4), expr(i32c(2)), vec(expr(refFunc(3)), expr(refNull))),
			cat(uleb(nil, 6), uleb(nil, 1), expr(i32c(1)), op(fref), vec(expr(refFunc(4)))),
			cat(uleb(nil, 1), op(0x00), u32vec(5)),
			cat(uleb(nil, 5), op(fref), vec(expr(refFunc(6)))),
			cat(uleb(nil, 3), op(0x00), u32vec(7)),
			cat(uleb(nil, 7), op(fref), vec(expr(refFunc(8)))),
			cat(uleb(nil, 0), expr(globalGet(0)), u32vec(9)),
		),
		codeSec(bodies...),
	)
}

func TestReferencesFollowTheShift(t *testing.T) {
	h := newHost(t, 3)
	calls := []invocation{inv("started")}
	want := []uint64{42}
	for k := uint64(1); k <= 9; k++ {
		calls = append(calls, inv("f"+string(rune('0'+k))))
		want = append(want, k)
	}
	calls = append(calls,
		inv("imp"), inv("t0", 0), inv("t0", 1), inv("t0", 2), inv("t0", 7), inv("t1", 0), inv("t1", 1),
		inv("init"), inv("t0", 10), inv("t0", 11), inv("ref7"), inv("ref8"), inv("refg"))
	want = append(want, 1000, 1, 1000, 3, 9, 2, 4, 0, 5, 6, 7, 8, 9)
	res := sameBehaviour(t, h, refsModule(), withBudget(3), calls...)
	for i, c := range calls {
		if c.name == "init" {
			continue
		}
		if res[i][0] != want[i] {
			t.Errorf("%s%v = %d, want %d", c.name, c.args, res[i][0], want[i])
		}
	}
}

// namesModule has a name section with every kind of subsection the rewriter
// treats differently:
//
//	(import "env" "imp" (func $imp_name (result i32)))   ;; func 0
//	(func $first (result i32) (i32.const 1))              ;; func 1, export "first"
//	(func $boom_fn (local $x i32) (unreachable))         ;; func 2
//	(func $caller (call $boom_fn))                        ;; func 3, export "run"
//	(global $gname i32 (i32.const 0))
//	;; name section: module "named"; function names; local names of func 2;
//	;; label names of func 3; global names; and an unknown subsection 42.
func namesModule() []byte {
	return module(
		typeSec(funcType(nil, []byte{i32}), funcType(nil, nil)),
		importSec(importFunc("env", "imp", 0)),
		functionSec(0, 1, 1),
		globalSec(global(i32, false, i32c(0))),
		exportSec(exportFunc("first", 1), exportFunc("run", 3), exportFunc("imp", 0)),
		codeSec(
			code(nil, i32c(1)),
			code([]byte{1, i32}, op(opUnreachable)),
			code(nil, call(2)),
		),
		customSection("name", nameSubsections(0, 1, 2, 3)...),
	)
}

// nameSubsections encodes namesModule's name section content with its four
// function indices (0 1 2 3 in the input, 0 2 3 4 after the rewrite), with or
// without the unknown subsection.
func nameSubsections(imp, first, boom, caller uint32) [][]byte {
	sub := func(id byte, content ...[]byte) []byte { b := cat(content...); return cat([]byte{id}, vec1(b)) }
	assoc := func(idx uint32, name string) []byte { return cat(uleb(nil, uint64(idx)), str(name)) }
	secs := [][]byte{
		sub(0, str("named")),
		sub(1, uleb(nil, 4), assoc(imp, "imp_name"), assoc(first, "first"), assoc(boom, "boom_fn"), assoc(caller, "caller")),
		sub(2, uleb(nil, 1), uleb(nil, uint64(boom)), uleb(nil, 1), assoc(0, "x")),
		sub(3, uleb(nil, 1), uleb(nil, uint64(caller)), uleb(nil, 1), assoc(0, "lbl")),
		sub(7, uleb(nil, 1), assoc(0, "gname")),
	}
	if caller == 3 {
		secs = append(secs, sub(42, []byte("whatever")))
	}
	return secs
}

func TestNameSection(t *testing.T) {
	out := mustInstrument(t, namesModule(), testConfig)

	// The rewritten section, byte for byte: indices past the import shifted,
	// known subsections kept, the unknown one dropped.
	want := customSection("name", nameSubsections(0, 2, 3, 4)...)
	wantSec := cat([]byte{0}, vec1(want.body))
	if !bytes.Contains(out, wantSec) {
		t.Errorf("output has no name section\n% x", wantSec)
	}

	// wazero reads it: exports and traps show the right names.
	h := newHost(t, 10)
	cm, err := h.rt.CompileModule(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	exp := cm.ExportedFunctions()
	for export, name := range map[string]string{"first": "first", "run": "caller", "imp": "imp_name"} {
		if got := exp[export].Name(); got != name {
			t.Errorf("export %q is named %q, want %q", export, got, name)
		}
	}
	m := h.mustInstantiate(out)
	_, err = m.ExportedFunction("run").Call(context.Background())
	if err == nil || !strings.Contains(err.Error(), ".boom_fn(") || !strings.Contains(err.Error(), ".caller(") {
		t.Errorf("trap: %v; want a stack trace naming boom_fn and caller", err)
	}
}

func TestMalformedNameSectionDropped(t *testing.T) {
	// Function names claiming 1000 entries but holding one. wazero rejects
	// the original; the rewrite drops the section and keeps the module.
	bad := customSection("name", cat([]byte{1}, vec1(cat(uleb(nil, 1000), uleb(nil, 0), str("f")))))
	in := module(
		typeSec(funcType(nil, []byte{i32})),
		functionSec(0),
		exportSec(exportFunc("f", 0)),
		codeSec(code(nil, i32c(5))),
		bad,
	)
	rt := wazero.NewRuntime(context.Background())
	defer rt.Close(context.Background())
	if _, err := rt.CompileModule(context.Background(), in); err == nil {
		t.Fatal("wazero accepted the malformed name section; the test no longer tests anything")
	}
	out := mustInstrument(t, in, testConfig)
	if bytes.Contains(out, []byte("\x04name")) {
		t.Error("malformed name section kept")
	}
	h := newHost(t, 10)
	if res := call1(t, h.mustInstantiate(out), "f"); res[0] != 5 {
		t.Errorf("f() = %d", res[0])
	}
}

func TestCustomSectionsKept(t *testing.T) {
	// Custom sections before the type section, between sections and at the
	// end are copied in place; sections the rewrite creates go where they
	// belong around them. DWARF sections are dropped.
	in := module(
		customSection("first", []byte{1, 2, 3}),
		typeSec(funcType(nil, []byte{i32})),
		customSection("middle", []byte("m")),
		functionSec(0),
		exportSec(exportFunc("f", 0)),
		codeSec(code(nil, i32c(5))),
		customSection("producers", []byte("p")),
		customSection(".debug_info", []byte("stale offsets")),
	)
	out := mustInstrument(t, in, testConfig)
	if bytes.Contains(out, []byte(".debug_info")) {
		t.Error("DWARF section kept: its code offsets no longer match")
	}
	for _, s := range []section{customSection("first", []byte{1, 2, 3}), customSection("middle", []byte("m")), customSection("producers", []byte("p"))} {
		if !bytes.Contains(out, cat([]byte{0}, vec1(s.body))) {
			t.Errorf("custom section %q missing", s.body)
		}
	}
	h := newHost(t, 10)
	if res := call1(t, h.mustInstantiate(out), "f"); res[0] != 5 {
		t.Errorf("f() = %d", res[0])
	}
}
