package yield

import (
	"context"
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
