package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// wasmMagic opens every WebAssembly binary module.
var wasmMagic = []byte("\x00asm\x01\x00\x00\x00")

func TestModuleRoot(t *testing.T) {
	root := ModuleRoot(t)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(mod, []byte("module github.com/nylon-functions/nylon\n")) {
		t.Fatalf("%s/go.mod is not this module's", root)
	}
}

func TestWasmName(t *testing.T) {
	for dir, want := range map[string]string{
		"functions/examples/hello":      "functions_examples_hello.wasm",
		"wasmhost/testdata/guests/loop": "wasmhost_testdata_guests_loop.wasm",
		"functions/examples/chat/":      "functions_examples_chat.wasm",
	} {
		if got := WasmName(dir); got != want {
			t.Errorf("WasmName(%q) = %q, want %q", dir, got, want)
		}
	}
}

func TestCompileCacheDir(t *testing.T) {
	dir := CompileCacheDir(t)
	if filepath.Base(dir) != "wazero-cache" || filepath.Base(filepath.Dir(dir)) != "build" {
		t.Fatalf("CompileCacheDir = %s, want <root>/build/wazero-cache", dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("CompileCacheDir %s not created: %v", dir, err)
	}
}

// guestDir creates a throwaway guest package under build/ (ignored by
// `./...` patterns because of the leading underscore) and returns its
// module-relative path.
func guestDir(t *testing.T, src string) string {
	t.Helper()
	root := ModuleRoot(t)
	rel := fmt.Sprintf("build/_testguest_%s_%d", strings.ReplaceAll(t.Name(), "/", "_"), os.Getpid())
	abs := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(abs)
		os.Remove(filepath.Join(root, "build", "wasm", WasmName(rel)))
		os.Remove(filepath.Join(root, "build", "wasm", WasmName(rel)+".lock"))
	})
	writeGuest(t, abs, src, time.Now())
	return rel
}

func writeGuest(t *testing.T, dir, src string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(dir, "main.go")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

const guestV1 = `package main

//go:wasmexport v1
func v1() int32 { return 1 }

func main() {}
`

const guestV2 = `package main

//go:wasmexport v2_renamed
func v2() int32 { return 2 }

func main() {}
`

// TestWasmBuildsOnceAndRebuildsWhenStale builds a guest, checks a second
// call reuses the module, then edits the source and checks it is rebuilt.
func TestWasmBuildsOnceAndRebuildsWhenStale(t *testing.T) {
	rel := guestDir(t, guestV1)
	b := Wasm(t, rel)
	if !bytes.HasPrefix(b, wasmMagic) || !bytes.Contains(b, []byte("v1")) {
		t.Fatalf("built %d bytes, not a wasm module exporting v1", len(b))
	}
	out := WasmPath(t, rel)
	st1, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out, filepath.Join("build", "wasm", WasmName(rel))) {
		t.Fatalf("WasmPath = %s, want build/wasm/%s", out, WasmName(rel))
	}

	// Up to date: the same file, not rebuilt.
	if !bytes.Equal(Wasm(t, rel), b) {
		t.Fatal("second Wasm returned different bytes")
	}
	st2, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatalf("up-to-date module rebuilt: mtime %v -> %v", st1.ModTime(), st2.ModTime())
	}

	// Stale: a newer source rebuilds.
	writeGuest(t, filepath.Join(ModuleRoot(t), filepath.FromSlash(rel)), guestV2, st1.ModTime().Add(time.Second))
	b2 := Wasm(t, rel)
	if !bytes.Contains(b2, []byte("v2_renamed")) {
		t.Fatal("stale module was not rebuilt after its source changed")
	}
}

// TestWasmConcurrent has several goroutines ask for one module at once: the
// lock makes them share one build and all see a whole module.
func TestWasmConcurrent(t *testing.T) {
	rel := guestDir(t, guestV1)
	var wg sync.WaitGroup
	results := make([][]byte, 4)
	for i := range results {
		wg.Go(func() { results[i] = Wasm(t, rel) })
	}
	wg.Wait()
	for i, b := range results {
		if !bytes.HasPrefix(b, wasmMagic) || !bytes.Equal(b, results[0]) {
			t.Fatalf("goroutine %d got %d bytes, want the same whole module as goroutine 0", i, len(b))
		}
	}
}

// fatalTB records Fatalf instead of failing, so the failure path of Wasm can
// be checked.
type fatalTB struct {
	testing.TB
	msg string
}

type fatalStop struct{}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalStop{})
}

func TestWasmReportsBuildErrors(t *testing.T) {
	rel := guestDir(t, "package main\n\nfunc main() { undefinedThing() }\n")
	ft := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatalStop); !ok {
					panic(r)
				}
			}
		}()
		Wasm(ft, rel)
	}()
	if !strings.Contains(ft.msg, "undefinedThing") || !strings.Contains(ft.msg, rel) {
		t.Fatalf("Fatalf message %q lacks the package and go build output", ft.msg)
	}
	if _, err := os.Stat(filepath.Join(ModuleRoot(t), "build", "wasm", WasmName(rel))); err == nil {
		t.Fatal("a failed build left a module behind")
	}
}
