package yield

import (
	"context"
	"fmt"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// BenchmarkInstrument rewrites the hello example, a real Go guest of about
// 3 MB.
//
//	go test ./wasmhost/internal/yield -run '^$' -bench Instrument -benchmem
func BenchmarkInstrument(b *testing.B) {
	wasm := testutil.Wasm(b, "functions/examples/hello")
	cfg := Config{Module: "nylon_sys", Name: "yield", Budget: 1 << 20}
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Instrument(wasm, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoop measures what the rewrite costs a running guest, against
// what it replaces: sum(1000) (a 12-instruction loop body) uninstrumented,
// uninstrumented under WithCloseOnContextDone (wazero's own per-loop exit
// check), and instrumented.
//
//	go test ./wasmhost/internal/yield -run '^$' -bench Loop -benchmem
func BenchmarkLoop(b *testing.B) {
	instrumented := mustInstrument(b, sumModule(), Config{Module: "nylon_sys", Name: "yield", Budget: 1 << 20})
	for _, c := range []struct {
		name  string
		wasm  []byte
		close bool
	}{
		{"plain", sumModule(), false},
		{"closeOnContextDone", sumModule(), true},
		{"instrumented", instrumented, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			h := newHostWithConfig(b, 1<<20, wazero.NewRuntimeConfig().WithCloseOnContextDone(c.close))
			f := h.mustInstantiate(c.wasm).ExportedFunction("sum")
			stack := make([]uint64, 1)
			b.ReportAllocs()
			for b.Loop() {
				stack[0] = 1000
				if err := f.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
			if stack[0] != api.EncodeI32(499500) {
				b.Fatalf("sum(1000) = %d", stack[0])
			}
		})
	}
}

// BenchmarkBulk measures what a bulk instruction costs per byte (per entry
// for tables), to weigh its charge against BenchmarkLoop's cost per
// instruction (bulk.go, "Rates"): memory.fill, memory.copy and table.fill,
// uninstrumented, in cache and from memory.
//
//	go test ./wasmhost/internal/yield -run '^$' -bench 'Bulk|Loop/plain'
//
//	(memory 512) (table 1048576 funcref)
//	(func (export "fill") (param $n i32) (memory.fill (i32.const 0) (i32.const 1) (local.get $n)))
//	(func (export "copy") (param $n i32) (memory.copy (local.get $n) (i32.const 0) (local.get $n)))
//	(func (export "tfill") (param $n i32) (table.fill 0 (i32.const 0) (ref.null func) (local.get $n)))
func BenchmarkBulk(b *testing.B) {
	wasm := module(
		typeSec(funcType([]byte{i32}, nil)),
		functionSec(0, 0, 0),
		tableSec(table(fref, 1<<20)),
		memorySec(memory(512)),
		exportSec(exportFunc("fill", 0), exportFunc("copy", 1), exportFunc("tfill", 2)),
		codeSec(
			code(nil, i32c(0), i32c(1), localGet(0), misc(11, 0)),
			code(nil, localGet(0), i32c(0), localGet(0), misc(10, 0, 0)),
			code(nil, i32c(0), op(opRefNull, fref), localGet(0), misc(17, 0)),
		),
	)
	for _, c := range []struct {
		fn    string
		n     uint64
		bytes int64 // per unit of n
	}{
		{"fill", 16 << 10, 1}, {"fill", 16 << 20, 1},
		{"copy", 16 << 10, 1}, {"copy", 16 << 20, 1},
		{"tfill", 2 << 10, 8}, {"tfill", 1 << 20, 8},
	} {
		b.Run(fmt.Sprintf("%s/%d", c.fn, c.n), func(b *testing.B) {
			ctx := context.Background()
			f := newHost(b, 1<<20).mustInstantiate(wasm).ExportedFunction(c.fn)
			stack := make([]uint64, 1)
			b.SetBytes(int64(c.n) * c.bytes)
			for b.Loop() {
				stack[0] = c.n
				if err := f.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
