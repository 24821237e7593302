package registry_test

import (
	"fmt"
	"testing"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/registry"
)

func benchRegistry(b *testing.B) *registry.Registry {
	b.Helper()
	js := testutil.JetStream(b, testutil.Connect(b, testutil.RunNATS(b)))
	reg, err := registry.New(b.Context(), js, registry.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	return reg
}

// BenchmarkDeploy measures one deploy of fresh 2 MiB bytes, including
// retention and garbage collection once past the retention window.
func BenchmarkDeploy(b *testing.B) {
	reg := benchRegistry(b)
	mod := make([]byte, 2<<20)
	b.ReportAllocs()
	b.SetBytes(int64(len(mod)))
	for i := 0; b.Loop(); i++ {
		copy(mod, fmt.Sprint(i)) // distinct bytes each time
		if _, err := reg.Deploy(b.Context(), spec("bench"), mod); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	reg := benchRegistry(b)
	if _, err := reg.Deploy(b.Context(), spec("bench"), wasm("x")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Get(b.Context(), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkModule measures fetching and verifying a 2 MiB module.
func BenchmarkModule(b *testing.B) {
	reg := benchRegistry(b)
	rec, err := reg.Deploy(b.Context(), spec("bench"), make([]byte, 2<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(rec.Size)
	for b.Loop() {
		if _, err := reg.Module(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
}
