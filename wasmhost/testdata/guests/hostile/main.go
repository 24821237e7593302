//go:build wasip1

// Command hostile is a guest that misbehaves on demand, for the wasmhost
// tests. It speaks ABI v1 directly (no SDK). The route config key "mode"
// picks what nylon_handle does:
//
//	ok        answer Next, writing response header x-calls = the number of
//	          calls this instance has handled (so tests can tell a fresh
//	          instance from a reused one)
//	busy      like ok, but first spins, reads and sleeps 1ms with a global
//	          "busy" flag set; a call that finds the flag already set (two
//	          callers on one instance) answers Error with text "concurrent"
//	loop      spin forever
//	bomb      allocate memory until the runtime dies
//	panic     panic (a Go guest's panic ends in proc_exit(2))
//	sleep     time.Sleep for an hour
//	oob-key   pass read a key pointer outside memory
//	oob-buf   pass read a buffer outside memory
//	oob-write pass write an argument outside memory
//	oob-log   pass log a message outside memory
//	print     print config "lines" lines to stdout
//	log       call the log import config "lines" times
//	action    return config "action" as the action, unchecked
//
// It is built by the tests (testutil.Wasm) with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hostile.wasm ./wasmhost/testdata/guests/hostile
package main

import (
	"fmt"
	"strconv"
	"time"
	"unsafe"
)

//go:wasmimport nylon read
func hostRead(method, keyPtr, keyLen, bufPtr, bufCap uint32) int32

//go:wasmimport nylon write
func hostWrite(method, aPtr, aLen, bPtr, bLen uint32) int32

//go:wasmimport nylon log
func hostLog(level int32, ptr, n uint32)

// Far past any memory this guest will have (limits are at most 4 GiB, and
// tests give it far less).
const badPtr = 0xFFFF_FF00

const (
	readConfig     = 220
	readPath       = 204
	readHeader     = 201
	opSetHeader    = 100
	methodError    = 4
	actionNext     = 0
	actionError    = 2
	phaseSetReqAll = 1<<1 | 1<<2 | 1<<3 | 1<<4
)

var (
	calls int
	busy  bool
	keep  [][]byte // the memory bomb's hoard
	sink  int
)

//go:wasmexport nylon_abi_v1
func abiV1() {}

//go:wasmexport nylon_phases
func phases() int32 { return phaseSetReqAll }

//go:wasmexport nylon_handle
func handle(phase, event int32) int32 {
	calls++
	if busy {
		writeStr(methodError, "concurrent", "")
		return actionError
	}
	busy = true
	defer func() { busy = false }()

	switch mode := config("mode"); mode {
	case "ok":
		writeStr(opSetHeader, "x-calls", strconv.Itoa(calls))
	case "busy":
		// Stay in the call a while, and call the host, so that a second
		// caller let onto this instance would find busy set.
		for i := 0; i < 200; i++ {
			_ = read(readPath, "")
			_ = read(readHeader, "x-test")
			for j := 0; j < 200; j++ {
				sink += j
			}
			if i == 100 {
				// Block without burning CPU, so callers pile up and every
				// instance of the pool is busy at once.
				time.Sleep(time.Millisecond)
			}
		}
		writeStr(opSetHeader, "x-calls", strconv.Itoa(calls))
	case "loop":
		for {
			sink++
		}
	case "bomb":
		for {
			keep = append(keep, make([]byte, 1<<20))
			keep[len(keep)-1][0] = 1 // touch it, so nothing is optimised away
		}
	case "panic":
		panic("hostile guest: boom")
	case "sleep":
		time.Sleep(time.Hour)
	case "oob-key":
		hostRead(readHeader, badPtr, 16, 0, 0)
	case "oob-buf":
		hostRead(readPath, 0, 0, badPtr, 64)
	case "oob-write":
		hostWrite(opSetHeader, badPtr, 8, 0, 0)
	case "oob-log":
		hostLog(0, badPtr, 8)
	case "print":
		n, _ := strconv.Atoi(config("lines"))
		for i := 0; i < n; i++ {
			fmt.Println("hostile guest line", i)
		}
	case "log":
		n, _ := strconv.Atoi(config("lines"))
		for i := 0; i < n; i++ {
			logStr(0, "hostile guest log "+strconv.Itoa(i))
		}
	case "action":
		n, _ := strconv.Atoi(config("action"))
		return int32(n)
	default:
		writeStr(methodError, "unknown mode "+strconv.Quote(mode), "")
		return actionError
	}
	return actionNext
}

// read returns the value of method with key, or "" if absent.
func read(method uint32, key string) string {
	buf := make([]byte, 64)
	for {
		n := hostRead(method, strPtr(key), uint32(len(key)), bytesPtr(buf), uint32(len(buf)))
		if n < 0 {
			return ""
		}
		if int(n) <= len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, n)
	}
}

func config(key string) string { return read(readConfig, key) }

func writeStr(method uint32, a, b string) int32 {
	return hostWrite(method, strPtr(a), uint32(len(a)), strPtr(b), uint32(len(b)))
}

func logStr(level int32, msg string) { hostLog(level, strPtr(msg), uint32(len(msg))) }

func strPtr(s string) uint32 {
	if s == "" {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.StringData(s))))
}

func bytesPtr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

func main() {}
