// Package examplestest tests the guest SDK (functions/sdk) and the example
// functions (functions/examples/*) as the node runs them: each is built to
// WebAssembly with testutil.Wasm and run under wazero against a small
// test-only implementation of the "nylon" host module (read, write and log
// of guest ABI v1, answered from a table of values).
//
// The package has no code of its own; everything is in its _test.go files.
//
// # Example
//
//	go test ./functions/examplestest/
//	go test ./functions/examplestest/ -run XXX -bench . -benchmem
package examplestest
