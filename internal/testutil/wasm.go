package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sdkDir is the guest SDK, relative to the module root: every guest module
// depends on it, so a change there rebuilds them all.
const sdkDir = "functions"

// Wasm builds the Go guest package dir (relative to the module root, e.g.
// "functions/examples/hello" or "wasmhost/testdata/guests/loop") as a WASI
// reactor and returns the module's bytes. See WasmPath for where the module
// is written and when it is rebuilt. It fails the test with the go build
// output when the package does not build.
func Wasm(t testing.TB, dir string) []byte {
	t.Helper()
	path := WasmPath(t, dir)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("wasm %s: %v", dir, err)
	}
	return b
}

// WasmPath builds the Go guest package dir like Wasm and returns the path of
// the module:
//
//	<module root>/build/wasm/<dir with "/" replaced by "_">.wasm
//
// e.g. build/wasm/functions_examples_hello.wasm. The Makefile's `functions`
// target writes the examples to the same names, so either can reuse the
// other's output. The command is
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o <out> ./<dir>
//
// It builds only when the module is missing or older than go.mod or any .go
// file under dir or under functions/ (the SDK). Test binaries of several
// packages may ask at once (go test ./... runs packages in parallel): a file
// lock next to the output serialises them, and the module is built into a
// temporary file and renamed into place, so no reader sees half a module.
func WasmPath(t testing.TB, dir string) string {
	t.Helper()
	root := ModuleRoot(t)
	dir = filepath.ToSlash(filepath.Clean(dir))
	if dir == "." || strings.HasPrefix(dir, "../") || filepath.IsAbs(dir) {
		t.Fatalf("wasm %s: want a package directory inside the module", dir)
	}
	outDir := filepath.Join(root, "build", "wasm")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatalf("wasm %s: %v", dir, err)
	}
	out := filepath.Join(outDir, WasmName(dir))

	fresh, err := upToDate(root, dir, out)
	if err != nil {
		t.Fatalf("wasm %s: %v", dir, err)
	}
	if fresh {
		return out
	}

	unlock, err := lockFile(out + ".lock")
	if err != nil {
		t.Fatalf("wasm %s: lock: %v", dir, err)
	}
	defer unlock()
	// Another test binary may have built it while this one waited.
	if fresh, err = upToDate(root, dir, out); err != nil {
		t.Fatalf("wasm %s: %v", dir, err)
	}
	if fresh {
		return out
	}
	if err := buildWasm(t, root, dir, out); err != nil {
		t.Fatalf("wasm %s: %v", dir, err)
	}
	return out
}

// WasmName is the file name under build/wasm of the module built from dir:
// "functions/examples/hello" -> "functions_examples_hello.wasm".
func WasmName(dir string) string {
	return strings.ReplaceAll(filepath.ToSlash(filepath.Clean(dir)), "/", "_") + ".wasm"
}

// ModuleRoot returns the directory holding go.mod, searched from the working
// directory (a test's package directory) upward.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("module root: no go.mod in %s or above", wd)
		}
		dir = parent
	}
}

// CompileCacheDir returns <module root>/build/wazero-cache, created if
// missing: a wazero compilation cache directory
// (wazero.NewCompilationCacheWithDir) that tests of every package and every
// run share, so each module is compiled to machine code once.
func CompileCacheDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(ModuleRoot(t), "build", "wazero-cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("compile cache dir: %v", err)
	}
	return dir
}

// upToDate reports whether out exists and is newer than every input of the
// build of dir.
func upToDate(root, dir, out string) (bool, error) {
	st, err := os.Stat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	newest, err := newestInput(root, dir)
	if err != nil {
		return false, err
	}
	return st.ModTime().After(newest), nil
}

// newestInput returns the latest modification time of go.mod, go.sum and
// the .go files under dir and the SDK.
func newestInput(root, dir string) (time.Time, error) {
	var newest time.Time
	note := func(path string) error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
		return nil
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := note(filepath.Join(root, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return time.Time{}, err
		}
	}
	for _, d := range []string{dir, sdkDir} {
		err := filepath.WalkDir(filepath.Join(root, filepath.FromSlash(d)), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() || !strings.HasSuffix(path, ".go") {
				return nil
			}
			return note(path)
		})
		if err != nil {
			return time.Time{}, fmt.Errorf("scan %s: %w", d, err)
		}
	}
	return newest, nil
}

// buildWasm runs go build into a temporary file and renames it to out.
func buildWasm(t testing.TB, root, dir, out string) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".build-*.wasm")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName) // a no-op after the rename

	// The module gets the build's start time, so a source saved while the
	// build ran is newer than the module and triggers the next rebuild.
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), "go", "build", "-buildmode=c-shared", "-trimpath", "-o", tmpName, "./"+dir)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, output.Bytes())
	}
	if err := os.Chtimes(tmpName, start, start); err != nil {
		return err
	}
	return os.Rename(tmpName, out)
}
