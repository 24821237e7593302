// Package abi is the guest side of the Nylon guest ABI v1: the method
// numbers, phases, actions and result codes a WebAssembly module shares with
// the node, and the three host functions it imports from module "nylon"
// (read, write, log).
//
// Only the SDK (functions/sdk) imports it; function authors never do. The
// package imports nothing from the host side of this repository: the numbers
// are copies of protocol/method.go and protocol/phase.go, and a host-side test
// (abi_test.go) fails if the copies drift.
//
// On GOOS=wasip1 the functions call the host. On every other platform they
// are stubs that report "absent" (Read returns -1) or "not allowed" (Write
// returns ResultNotAllowed), so the SDK and examples still build, vet and
// unit-test on the developer's machine.
//
// # Example
//
//	var buf [64]byte
//	n := abi.Read(abi.ReadRequestMethod, "", buf[:])
//	if n >= 0 && int(n) <= len(buf) {
//		method := string(buf[:n])
//		abi.Log(abi.LevelInfo, "method "+method)
//	}
//	abi.Write(abi.OpSetResponseStatus, "204", "")
package abi
