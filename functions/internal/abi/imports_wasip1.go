//go:build wasip1

package abi

import (
	"strconv"
	"unsafe"
)

//go:wasmimport nylon read
//go:noescape
func hostRead(method uint32, keyPtr unsafe.Pointer, keyLen uint32, bufPtr unsafe.Pointer, bufCap uint32) int32

//go:wasmimport nylon write
//go:noescape
func hostWrite(method uint32, aPtr unsafe.Pointer, aLen uint32, bPtr unsafe.Pointer, bLen uint32) int32

//go:wasmimport nylon log
//go:noescape
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

// Read asks the host for the value of method (keyed by key where the method
// takes one) and copies it into buf. It returns the value's full length; a
// length above len(buf) means nothing was copied and the caller must retry
// with at least that much room. ReadAbsent (-1) means there is no value.
func Read(method uint32, key string, buf []byte) int32 {
	return hostRead(method, strPtr(key), uint32(len(key)), bytesPtr(buf), uint32(len(buf)))
}

// Write appends an op (method | flags) with arguments a and b. It returns
// ResultOK or a negative Result* code.
func Write(method uint32, a, b string) int32 {
	return hostWrite(method, strPtr(a), uint32(len(a)), strPtr(b), uint32(len(b)))
}

// WriteBytes is Write with a byte-slice second argument, so binary payloads
// and bodies are not copied into a string first.
func WriteBytes(method uint32, a string, b []byte) int32 {
	return hostWrite(method, strPtr(a), uint32(len(a)), bytesPtr(b), uint32(len(b)))
}

// WriteData is Write with a single byte-slice argument: bodies and
// WebSocket payloads (103, 301, 302).
func WriteData(method uint32, a []byte) int32 {
	return hostWrite(method, bytesPtr(a), uint32(len(a)), nil, 0)
}

// WriteNum is Write with a first argument of n in decimal (status 102,
// close code 303), formatted on the stack so the call does not allocate.
func WriteNum(method uint32, n int64, b string) int32 {
	var a [20]byte
	d := strconv.AppendInt(a[:0], n, 10)
	return hostWrite(method, unsafe.Pointer(&a[0]), uint32(len(d)), strPtr(b), uint32(len(b)))
}

// Log hands one formatted record to the node's log.
func Log(level int32, msg []byte) {
	hostLog(level, bytesPtr(msg), uint32(len(msg)))
}

// strPtr and bytesPtr return nil (address 0) for empty values: the data
// pointer of an empty string or slice may point one past an allocation,
// which the host's bounds check would rightly refuse.
func strPtr(s string) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}
