package testutil_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/wasmhost"
)

// guestPatterns match, from the module root, every Go guest package the
// project's tests load: the example functions, the SDK test guest and each
// package's testdata/guests.
var guestPatterns = []string{
	"functions/examples/*",
	"functions/examplestest/testdata/*",
	"*/testdata/guests/*",
}

// TestGuestsCompile builds every guest and loads it the way a node does
// (wasmhost: yield rewrite, compile, _initialize, ABI check), so a guest
// that stops building or validating fails here by name.
//
// make test runs it alone before the race tests: it leaves each module's
// machine code in the shared wazero cache (testutil.CompileCacheDir).
// wazero's compiler is Go code that -race slows several times; a cold
// compile of a Go guest under -race on two busy cores has taken over 30 s,
// long enough to run into other tests' deadlines. This must stay a test:
// the cache directory and key carry the wazero version read from the
// binary's build info, which test binaries lack ("dev"), so a module
// compiled by a plain program would not be found by a test binary.
func TestGuestsCompile(t *testing.T) {
	root := testutil.ModuleRoot(t)
	var dirs []string
	for _, pattern := range guestPatterns {
		matches, err := filepath.Glob(filepath.Join(root, pattern, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			dir, _ := filepath.Rel(root, filepath.Dir(m))
			if len(dirs) == 0 || dirs[len(dirs)-1] != dir {
				dirs = append(dirs, filepath.ToSlash(dir))
			}
		}
	}
	if len(dirs) < 5 {
		t.Fatalf("found %d guest packages (%v), want the examples and test guests", len(dirs), dirs)
	}

	cfg := wasmhost.Config{}.WithCompilationCacheDir(testutil.CompileCacheDir(t)).WithInitTimeout(time.Minute)
	host, err := wasmhost.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close(context.Background()) })

	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			wasm := testutil.Wasm(t, dir)
			info, err := host.Validate(t.Context(), wasm)
			if err != nil {
				t.Fatalf("validate %s: %v", dir, err)
			}
			if info.Phases == 0 {
				t.Fatalf("%s handles no phase", dir)
			}
		})
	}
}
