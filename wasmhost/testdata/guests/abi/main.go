//go:build wasip1

// Command abi exercises the read and write imports for the wasmhost tests.
// It speaks ABI v1 directly (no SDK) and handles every phase. It runs the
// script in route config key "script": commands separated by '\n', fields by
// '\x1f' (so values may hold spaces); a field "hex:<hex>" stands for the
// bytes it encodes (so values may hold anything):
//
//	p                      report "p <phase> <event>"
//	r <method> <key>       read; report "r <length> <hex of value>", or
//	                       "r -1" when absent, or "r ERR <why>" when the
//	                       host broke the read contract (see checkedRead)
//	w <method> <a> <b>     write (method may carry flags in its high bits);
//	                       report "w <result>"
//	wx <method> <n>        write with a = n bytes of 'x'; report "w <result>"
//	a <action>             return action (default 1, End)
//
// and finally writes the report, one line per command, as the error text
// (method 4, allowed in every phase).
//
// It is built by the tests (testutil.Wasm) with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o abi.wasm ./wasmhost/testdata/guests/abi
package main

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"unsafe"
)

//go:wasmimport nylon read
func hostRead(method, keyPtr, keyLen, bufPtr, bufCap uint32) int32

//go:wasmimport nylon write
func hostWrite(method, aPtr, aLen, bPtr, bLen uint32) int32

const (
	readConfig  = 220
	methodError = 4
	allPhases   = 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5
)

//go:wasmexport nylon_abi_v1
func abiV1() {}

//go:wasmexport nylon_phases
func phases() int32 { return allPhases }

//go:wasmexport nylon_handle
func handle(phase, event int32) int32 {
	script, errs := checkedRead(readConfig, "script")
	if errs != "" || script == nil {
		report("script: " + errs)
		return 2
	}
	action := int32(1)
	var out strings.Builder
	for _, line := range strings.Split(string(script), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\x1f")
		arg := func(i int) string {
			if i >= len(f) {
				return ""
			}
			if h, ok := strings.CutPrefix(f[i], "hex:"); ok {
				b, _ := hex.DecodeString(h)
				return string(b)
			}
			return f[i]
		}
		method, _ := strconv.ParseUint(arg(1), 10, 32)
		switch f[0] {
		case "p":
			out.WriteString("p " + strconv.Itoa(int(phase)) + " " + strconv.Itoa(int(event)) + "\n")
		case "r":
			v, errs := checkedRead(uint32(method), arg(2))
			switch {
			case errs != "":
				out.WriteString("r ERR " + errs + "\n")
			case v == nil:
				out.WriteString("r -1\n")
			default:
				out.WriteString("r " + strconv.Itoa(len(v)) + " " + hex.EncodeToString(v) + "\n")
			}
		case "w":
			rc := write(uint32(method), arg(2), arg(3))
			out.WriteString("w " + strconv.Itoa(int(rc)) + "\n")
		case "wx":
			n, _ := strconv.Atoi(arg(2))
			rc := write(uint32(method), strings.Repeat("x", n), "")
			out.WriteString("w " + strconv.Itoa(int(rc)) + "\n")
		case "a":
			n, _ := strconv.Atoi(arg(1))
			action = int32(n)
		default:
			out.WriteString("? " + f[0] + "\n")
		}
	}
	report(out.String())
	return action
}

// checkedRead reads method/key and checks the host keeps the read contract:
// with no room it returns the full length and copies nothing; with one byte
// too few it still copies nothing; with room it copies exactly the value and
// returns the same length. It returns nil for absent values and a
// description of the first violation in errs.
func checkedRead(method uint32, key string) (v []byte, errs string) {
	n := hostRead(method, strPtr(key), uint32(len(key)), 0, 0)
	if n < 0 {
		if n != -1 {
			return nil, "absent value read as " + strconv.Itoa(int(n))
		}
		return nil, ""
	}
	if n > 0 {
		short := bytes.Repeat([]byte{0xAA}, int(n)) // n-1 bytes of room, one more as a canary
		if got := hostRead(method, strPtr(key), uint32(len(key)), bytesPtr(short), uint32(n-1)); got != n {
			return nil, "short buffer: length " + strconv.Itoa(int(got)) + ", first said " + strconv.Itoa(int(n))
		}
		for _, c := range short {
			if c != 0xAA {
				return nil, "short buffer: host copied into a buffer too small for the value"
			}
		}
	}
	buf := bytes.Repeat([]byte{0xAA}, int(n)+8)
	got := hostRead(method, strPtr(key), uint32(len(key)), bytesPtr(buf), uint32(len(buf)))
	if got != n {
		return nil, "roomy buffer: length " + strconv.Itoa(int(got)) + ", first said " + strconv.Itoa(int(n))
	}
	for _, c := range buf[n:] {
		if c != 0xAA {
			return nil, "roomy buffer: host wrote past the value's length"
		}
	}
	return buf[:n:n], ""
}

func report(s string) { write(methodError, s, "") }

func write(method uint32, a, b string) int32 {
	return hostWrite(method, strPtr(a), uint32(len(a)), strPtr(b), uint32(len(b)))
}

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
