package yield_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"

	"github.com/nylon-functions/nylon/wasmhost/internal/yield"
)

// count is this module:
//
//	(module
//	  (func (export "count") (param $n i32) (result i32) (local $i i32)
//	    (loop $l
//	      (local.set $i (i32.add (local.get $i) (i32.const 1)))
//	      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
//	    (local.get $i)))
var count = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
	0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type: (i32) -> i32
	0x03, 0x02, 0x01, 0x00, // function
	0x07, 0x09, 0x01, 0x05, 'c', 'o', 'u', 'n', 't', 0x00, 0x00, // export
	0x0a, 0x19, 0x01, 0x17, 0x01, 0x01, 0x7f, // code: one body, one i32 local
	0x03, 0x40, // loop
	0x20, 0x01, 0x41, 0x01, 0x6a, 0x21, 0x01, // i += 1
	0x20, 0x01, 0x20, 0x00, 0x49, 0x0d, 0x00, // br_if (i < n)
	0x0b, 0x20, 0x01, 0x0b, // end; local.get $i; end
}

// The loop body is 9 instructions, so count(1000) does about 9000 units of
// work. With a budget of 100, twelve iterations (108 units) drive the counter
// below zero and the thirteenth yields: 1000/13, 77 yields.
func Example() {
	ctx := context.Background()
	out, err := yield.Instrument(count, yield.Config{Module: "nylon_sys", Name: "yield", Budget: 100})
	if err != nil {
		fmt.Println(err)
		return
	}

	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	yields := 0
	_, err = rt.NewHostModuleBuilder("nylon_sys").NewFunctionBuilder().
		WithFunc(func(ctx context.Context) int32 {
			yields++
			if err := ctx.Err(); err != nil {
				panic(err) // ends the guest's call with this error
			}
			return 100 // the next budget
		}).
		Export("yield").Instantiate(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	mod, err := rt.Instantiate(ctx, out)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := mod.ExportedFunction("count").Call(ctx, 1000)
	fmt.Println(res, err, yields)

	// A cancelled call stops at its next yield.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = mod.ExportedFunction("count").Call(cancelled, 1000)
	fmt.Println(errors.Is(err, context.Canceled))
	// Output:
	// [1000] <nil> 77
	// true
}

// Modules the rewriter cannot instrument faithfully are refused.
func ExampleInstrument_unsupported() {
	threads := append([]byte(nil), count...)
	threads[len(threads)-4] = 0xfe // an atomic instruction where the loop's end was
	_, err := yield.Instrument(threads, yield.Config{Module: "nylon_sys", Name: "yield", Budget: 100})
	fmt.Println(errors.Is(err, yield.ErrUnsupported))
	fmt.Println(err)
	// Output:
	// true
	// yield: code section: func[0]: offset 0x36: unsupported wasm: threads (opcode 0xfe)
}
