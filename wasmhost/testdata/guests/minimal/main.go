//go:build wasip1

// Command minimal is the smallest guest that satisfies ABI v1: it handles
// request_filter and answers Next without touching the host. The wasmhost
// benchmarks use it to measure the host's own per-call cost.
//
// It is built by the tests (testutil.Wasm) with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o minimal.wasm ./wasmhost/testdata/guests/minimal
package main

//go:wasmexport nylon_abi_v1
func abiV1() {}

//go:wasmexport nylon_phases
func phases() int32 { return 1 << 1 } // request_filter

//go:wasmexport nylon_handle
func handle(phase, event int32) int32 { return 0 } // Next

func main() {}
