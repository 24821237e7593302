package wasmhost_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed testdata/*.wasm from their builders")

// committedModules are the hand-built modules kept in testdata/ (with their
// .wat source) so other packages and tools can use them without this
// package's encoder. Rebuild them with
//
//	go test ./wasmhost -run TestCommittedModules -update
var committedModules = map[string]func() []byte{
	"hello.wasm":     helloModule,
	"loop.wasm":      loopModule,
	"initloop.wasm":  initLoopModule,
	"trap.wasm":      trapModule,
	"bulkloop.wasm":  bulkLoopModule,
	"tablegrow.wasm": tableGrowModule,
}

func TestCommittedModules(t *testing.T) {
	for name, build := range committedModules {
		path := filepath.Join("testdata", name)
		want := build()
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (rebuild with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from its builder; rebuild with -update", path)
		}
		if _, err := os.Stat(path[:len(path)-len(".wasm")] + ".wat"); err != nil {
			t.Errorf("%s has no .wat source: %v", path, err)
		}
	}
}
