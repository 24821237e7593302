package yield

import (
	"encoding/binary"
	"testing"
)

func i32x4(a, b, c, d uint32) []byte {
	v := make([]byte, 16)
	for i, x := range []uint32{a, b, c, d} {
		binary.LittleEndian.PutUint32(v[4*i:], x)
	}
	return simd(0x0c, v...) // v128.const
}

// simdModule runs SIMD instructions of every immediate kind inside a loop,
// including two-byte opcodes (i32x4.add 0xae, i16x8.abs 0x80) and a v128
// global initialised by v128.const:
//
//	(memory 1)
//	(global $gv v128 (v128.const i32x4 5 6 7 8))
//	(func (export "simd") (param $n i32) (result i32) (local $i i32) (local $acc i32) (local $v v128)
//	  <countedLoop $n $i:
//	    v = i16x8.abs(i32x4.add(i8x16.shuffle 0..3 20..23 8..11 28..31
//	                              (v128.const 1 2 3 4) (v128.const 10 20 30 40)),
//	                            i32x4.splat(i)))                         ;; (1+i 20+i 3+i 40+i)
//	    v128.store offset=16 (i32.const 0) v
//	    acc += i32x4.extract_lane 1 v                                     ;; 20+i
//	    acc += i32x4.extract_lane 3 (v128.load offset=16 (i32.const 0))   ;; 40+i
//	    v128.store32_lane 2 (i32.const 32) v;  acc += i32.load 32         ;; 3+i
//	    acc += i32x4.extract_lane 0 (v128.load32_lane 0 (i32.const 16) (v128.const 0))  ;; 1+i
//	    acc += v128.any_true v                                            ;; 1
//	    acc += i32x4.extract_lane 0 (v128.load32_zero (i32.const 16))     ;; 1+i
//	  >
//	  acc + i32x4.extract_lane 2 (global.get $gv))                        ;; 7
func simdModule() []byte {
	shuffle := simd(0x0d, 0, 1, 2, 3, 20, 21, 22, 23, 8, 9, 10, 11, 28, 29, 30, 31)
	addAcc := func(instrs ...[]byte) []byte {
		return cat(localGet(2), cat(instrs...), op(opI32Add), localSet(2))
	}
	memarg := func(align, offset byte) []byte { return []byte{align, offset} }
	return module(
		typeSec(funcType([]byte{i32}, []byte{i32})),
		functionSec(0),
		memorySec(memory(1)),
		globalSec(global(v128, false, i32x4(5, 6, 7, 8))),
		exportSec(exportFunc("simd", 0)),
		codeSec(code([]byte{2, i32, 1, v128},
			countedLoop(0, 1,
				i32x4(1, 2, 3, 4), i32x4(10, 20, 30, 40), shuffle,
				localGet(1), simd(0x11), // i32x4.splat
				simd(0xae), // i32x4.add
				simd(0x80), // i16x8.abs
				localSet(3),
				i32c(0), localGet(3), simd(0x0b, memarg(4, 16)...), // v128.store
				addAcc(localGet(3), simd(0x1b, 1)), // i32x4.extract_lane 1
				addAcc(i32c(0), simd(0x00, memarg(4, 16)...), simd(0x1b, 3)),
				i32c(32), localGet(3), simd(0x5a, append(memarg(2, 0), 2)...), // v128.store32_lane 2
				addAcc(i32c(32), op(opI32Load, 2, 0)),
				addAcc(i32c(16), i32x4(0, 0, 0, 0), simd(0x56, append(memarg(2, 0), 0)...), simd(0x1b, 0)), // v128.load32_lane 0
				addAcc(localGet(3), simd(0x53)),                                                            // v128.any_true
				addAcc(i32c(16), simd(0x5c, memarg(2, 0)...), simd(0x1b, 0)),                               // v128.load32_zero
			),
			localGet(2), globalGet(0), simd(0x1b, 2), op(opI32Add),
		)),
	)
}

func TestSIMD(t *testing.T) {
	h := newHost(t, 4)
	for _, n := range []uint64{1, 10, 50} {
		res := sameBehaviour(t, h, simdModule(), withBudget(4), inv("simd", n))
		want := 66*n + 5*n*(n-1)/2 + 7
		if res[0][0] != want {
			t.Errorf("simd(%d) = %d, want %d", n, res[0][0], want)
		}
	}
}

// brTableModule dispatches on i&3 with br_table inside a loop:
//
//	(func (export "dispatch") (param $n i32) (result i32) (local $i i32) (local $acc i32)
//	  <countedLoop $n $i:
//	    (block $exit (block $c2 (block $c1 (block $c0
//	      (br_table $c0 $c1 $c2 $exit (i32.and (local.get $i) (i32.const 3))))
//	      acc += 1   (br $exit))
//	      acc += 10  (br $exit))
//	      acc += 100))>
//	  local.get $acc)
func brTableModule() []byte {
	add := func(k int32) []byte { return cat(localGet(2), i32c(k), op(opI32Add), localSet(2)) }
	return module(
		typeSec(funcType([]byte{i32}, []byte{i32})),
		functionSec(0),
		exportSec(exportFunc("dispatch", 0)),
		codeSec(code([]byte{2, i32},
			countedLoop(0, 1,
				op(opBlock, blockEmpty, opBlock, blockEmpty, opBlock, blockEmpty, opBlock, blockEmpty),
				localGet(1), i32c(3), op(0x71), // i32.and
				op(opBrTable, 3, 0, 1, 2, 3),
				op(opEnd), add(1), br(2),
				op(opEnd), add(10), br(1),
				op(opEnd), add(100),
				op(opEnd),
			),
			localGet(2),
		)),
	)
}

func TestBrTable(t *testing.T) {
	h := newHost(t, 5)
	for _, n := range []uint64{0, 3, 4, 17, 100} {
		var want uint64
		for i := range n {
			want += []uint64{1, 10, 100, 0}[i&3]
		}
		if res := sameBehaviour(t, h, brTableModule(), withBudget(5), inv("dispatch", n)); res[0][0] != want {
			t.Errorf("dispatch(%d) = %d, want %d", n, res[0][0], want)
		}
	}
}

// bulkModule uses the data count section, bulk memory and table
// instructions, reference types and the other non-MVP instructions of
// api.CoreFeaturesV2:
//
//	(memory 1) (table 4 funcref)
//	(datacount 2)
//	(data "hello")                                   ;; passive
//	(data (i32.const 100) "xy")
//	(elem func $misc)                                ;; passive: segment 0
//	(func $bulk (export "bulk") (result i32) (local $i i32) (local $acc i32) (local $n i32)
//	  (memory.init 0 (i32.const 0) (i32.const 0) (i32.const 5))
//	  (data.drop 0)
//	  (memory.copy (i32.const 10) (i32.const 0) (i32.const 5))
//	  (memory.fill (i32.const 20) (i32.const 122) (i32.const 3))
//	  (local.set $n (i32.const 25))
//	  <countedLoop $n $i: acc += i32.load8_u(i)>
//	  acc + i32.load8_u(100) + i32.load8_u(101))
//	(func $misc (export "misc") (result i32)
//	  (i32.trunc_sat_f32_s (f32.const 1e10))         ;; 2147483647
//	  + (i32.extend8_s (i32.const 0x80))             ;; -128
//	  + (select (result i32) (i32.const 5) (i32.const 6) (i32.const 0))  ;; 6
//	  + (ref.is_null (ref.null func))                ;; 1
//	  + (table.size 0)                               ;; 4 (first call)
//	  + (table.grow 0 (ref.null func) (i32.const 2)) ;; 4 (first call)
//	  (table.fill 0 (i32.const 0) (ref.null func) (i32.const 1))
//	  + (ref.is_null (table.get 0 (i32.const 0)))    ;; 1
//	  (table.init 0 0 (i32.const 1) (i32.const 0) (i32.const 1))
//	  (elem.drop 0)
//	  (table.copy 0 0 (i32.const 2) (i32.const 1) (i32.const 1))
//	  + (ref.is_null (table.get 0 (i32.const 2)))    ;; 0
//	  + (i32.wrap_i64 (i64.const 3)))                ;; 3
func bulkModule() []byte {
	add := op(opI32Add)
	return module(
		typeSec(funcType(nil, []byte{i32})),
		functionSec(0, 0),
		tableSec(table(fref, 4)),
		memorySec(memory(1)),
		exportSec(exportFunc("bulk", 0), exportFunc("misc", 1)),
		elemSec(cat(uleb(nil, 1), op(0x00), u32vec(1))),
		dataCountSec(2),
		codeSec(
			code([]byte{3, i32},
				i32c(0), i32c(0), i32c(5), misc(8, 0, 0), // memory.init 0 (mem 0)
				misc(9, 0),                                 // data.drop 0
				i32c(10), i32c(0), i32c(5), misc(10, 0, 0), // memory.copy
				i32c(20), i32c(122), i32c(3), misc(11, 0), // memory.fill
				i32c(25), localSet(2),
				countedLoop(2, 0, localGet(1), localGet(0), op(opI32Load8U, 0, 0), add, localSet(1)),
				localGet(1), i32c(100), op(opI32Load8U, 0, 0), add, i32c(101), op(opI32Load8U, 0, 0), add,
			),
			code(nil,
				op(0x43), binary.LittleEndian.AppendUint32(nil, 0x501502f9), misc(0), // f32.const 1e10; i32.trunc_sat_f32_s
				i32c(0x80), op(opI32Extend8S), add,
				i32c(5), i32c(6), i32c(0), op(opSelectT, 1, i32), add,
				op(opRefNull, fref, opRefIsNull), add,
				misc(16, 0), add, // table.size
				op(opRefNull, fref), i32c(2), misc(15, 0), add, // table.grow
				i32c(0), op(opRefNull, fref), i32c(1), misc(17, 0), // table.fill
				i32c(0), op(opTableGet, 0, opRefIsNull), add,
				i32c(1), i32c(0), i32c(1), misc(12, 0, 0), // table.init
				misc(13, 0),                               // elem.drop
				i32c(2), i32c(1), i32c(1), misc(14, 0, 0), // table.copy
				i32c(2), op(opTableGet, 0, opRefIsNull), add,
				i64c(3), op(0xa7), add, // i32.wrap_i64
			),
		),
		dataSec(
			cat(uleb(nil, 1), str("hello")),
			cat(uleb(nil, 0), expr(i32c(100)), str("xy")),
		),
	)
}

func TestBulkMemoryAndReferenceTypes(t *testing.T) {
	h := newHost(t, 7)
	hello := uint64('h' + 'e' + 'l' + 'l' + 'o')
	res := sameBehaviour(t, h, bulkModule(), withBudget(7), inv("bulk"), inv("misc"))
	if want := 2*hello + 3*'z' + 'x' + 'y'; res[0][0] != want {
		t.Errorf("bulk() = %d, want %d", res[0][0], want)
	}
	if want := uint64(uint32(2147483647 - 128 + 6 + 1 + 4 + 4 + 1 + 0 + 3)); res[1][0] != want {
		t.Errorf("misc() = %d, want %d", res[1][0], want)
	}
}
