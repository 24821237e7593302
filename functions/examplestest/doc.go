// Package examplestest tests the guest SDK (functions/sdk) and the example
// functions (functions/examples/*) as the node runs them: each is built to
// WebAssembly with testutil.Wasm and run by the real host, package
// wasmhost, with a protocol.Invocation built from each test's table of
// values; the guest's writes come back as protocol.Ops and its log records
// are read from the host's slog output.
//
// The package has no code of its own; everything is in its _test.go files.
//
// # Example
//
//	go test ./functions/examplestest/
//	go test ./functions/examplestest/ -run XXX -bench . -benchmem
package examplestest
