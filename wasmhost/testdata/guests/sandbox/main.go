//go:build wasip1

// Command sandbox probes what the host gives a guest, for the wasmhost
// tests of the sandbox (DESIGN.md, Guest ABI: no filesystem, no
// environment, no network; real clock and crypto random). It speaks ABI v1
// directly (no SDK), handles request_filter and answers Next with one
// response header per probe:
//
//	x-wall       time.Now(), Unix nanoseconds
//	x-mono       nanoseconds since the instance started, by the monotonic clock
//	x-rand       16 bytes of crypto/rand, hex
//	x-env        os.Environ(), joined by '\n'
//	x-args       len(os.Args)
//	x-read       os.ReadFile(<route config "file">), a file the host has
//	x-passwd     os.ReadFile("/etc/passwd")
//	x-open       os.Open("/")
//	x-readdir    os.ReadDir(".")
//	x-create     os.WriteFile(<route config "dir">/escaped)
//	x-dial       net.Dial to 127.0.0.1:<route config "port">
//
// A probe that can fail reports "ok" or "error: <text>".
//
// It is built by the tests (testutil.Wasm) with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sandbox.wasm ./wasmhost/testdata/guests/sandbox
package main

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

//go:wasmimport nylon read
func hostRead(method, keyPtr, keyLen, bufPtr, bufCap uint32) int32

//go:wasmimport nylon write
func hostWrite(method, aPtr, aLen, bPtr, bLen uint32) int32

const (
	readConfig    = 220
	opSetHeader   = 100
	actionNext    = 0
	requestFilter = 1 << 1
)

// started carries a monotonic reading, so time.Since(started) is measured
// by the host's nanotime, not its wall clock.
var started = time.Now()

//go:wasmexport nylon_abi_v1
func abiV1() {}

//go:wasmexport nylon_phases
func phases() int32 { return requestFilter }

//go:wasmexport nylon_handle
func handle(phase, event int32) int32 {
	set("x-wall", strconv.FormatInt(time.Now().UnixNano(), 10))
	set("x-mono", strconv.FormatInt(int64(time.Since(started)), 10))

	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		set("x-rand", "error: "+err.Error())
	} else {
		set("x-rand", hex.EncodeToString(b))
	}

	set("x-env", strings.Join(os.Environ(), "\n"))
	set("x-args", strconv.Itoa(len(os.Args)))

	_, err := os.ReadFile(config("file"))
	set("x-read", outcome(err))
	_, err = os.ReadFile("/etc/passwd")
	set("x-passwd", outcome(err))
	f, err := os.Open("/")
	if err == nil {
		f.Close()
	}
	set("x-open", outcome(err))
	_, err = os.ReadDir(".")
	set("x-readdir", outcome(err))
	err = os.WriteFile(config("dir")+"/escaped", []byte("out of the sandbox"), 0o644)
	set("x-create", outcome(err))

	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", config("port")), time.Second)
	if err == nil {
		c.Close()
	}
	set("x-dial", outcome(err))
	return actionNext
}

func outcome(err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

// config returns the route config value of key, or "" if absent.
func config(key string) string {
	buf := make([]byte, 256)
	for {
		n := hostRead(readConfig, strPtr(key), uint32(len(key)), bytesPtr(buf), uint32(len(buf)))
		if n < 0 {
			return ""
		}
		if int(n) <= len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, n)
	}
}

func set(name, value string) {
	hostWrite(opSetHeader, strPtr(name), uint32(len(name)), strPtr(value), uint32(len(value)))
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
