//go:build !wasip1

package abi

// Host stand-ins so the SDK and examples build, vet and unit-test outside
// WebAssembly. They behave like a host that has no values and refuses every
// write; the real behaviour exists only in a wasip1 build.

// Read reports every value as absent.
func Read(method uint32, key string, buf []byte) int32 { return ReadAbsent }

// Write refuses every op.
func Write(method uint32, a, b string) int32 { return ResultNotAllowed }

// WriteBytes refuses every op.
func WriteBytes(method uint32, a string, b []byte) int32 { return ResultNotAllowed }

// WriteData refuses every op.
func WriteData(method uint32, a []byte) int32 { return ResultNotAllowed }

// WriteNum refuses every op.
func WriteNum(method uint32, n int64, b string) int32 { return ResultNotAllowed }

// Log discards the record.
func Log(level int32, msg []byte) {}
