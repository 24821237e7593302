package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Load a function and call its request_filter phase.
func Example() {
	ctx := context.Background()
	host, err := wasmhost.New(ctx, wasmhost.Config{}) // .WithCompilationCacheDir(dir) to reuse compiled code across restarts
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close(ctx)

	wasm, err := os.ReadFile("testdata/hello.wasm") // sets x-hello: world, answers End
	if err != nil {
		log.Fatal(err)
	}
	mod, err := host.Compile(ctx, "hello", wasm, wasmhost.Limits{Timeout: 500 * time.Millisecond, MaxWorkers: 4})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("phases:", mod.Phases().Names())

	inv := &protocol.Invocation{Request: protocol.HTTPRequest{Method: "GET", Path: "/"}}
	res, err := mod.Call(ctx, protocol.PhaseRequestFilter, 0, inv, protocol.NewRequestID())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("action:", res.Action)
	for _, op := range res.Ops {
		fmt.Printf("op %d %s: %s\n", op.Code, op.Key, op.Value)
	}
	// Output:
	// phases: [request_filter]
	// action: End
	// op 100 x-hello: world
}

// Validate says precisely why an upload cannot run.
func ExampleHost_Validate() {
	ctx := context.Background()
	host, err := wasmhost.New(ctx, wasmhost.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close(ctx)

	_, err = host.Validate(ctx, []byte("#!/bin/sh\necho hello\n"))
	fmt.Println(errors.Is(err, wasmhost.ErrNotWasm), err)

	wasm, _ := os.ReadFile("testdata/hello.wasm")
	info, err := host.Validate(ctx, wasm)
	fmt.Println(info.Phases.Names(), info.Size, err)
	// Output:
	// true module: not a wasm module: want magic \0asm, got "#!/b" (21 bytes)
	// [request_filter] 222 <nil>
}

// A handler that never returns is stopped at its timeout; the module goes
// on serving with a fresh instance.
func ExampleModule_Call_timeout() {
	ctx := context.Background()
	host, err := wasmhost.New(ctx, wasmhost.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close(ctx)

	wasm, _ := os.ReadFile("testdata/loop.wasm")
	mod, err := host.Compile(ctx, "spin", wasm, wasmhost.Limits{Timeout: 20 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	_, err = mod.Call(ctx, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
	fmt.Println(errors.Is(err, wasmhost.ErrTimeout), err)
	st := mod.Stats()
	fmt.Println("timeouts:", st.Timeouts, "discarded:", st.Discarded)
	// Output:
	// true function[spin] phase[request_filter]: call timed out after 20ms
	// timeouts: 1 discarded: 1
}
