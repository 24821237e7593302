package registry_test

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/registry"
)

func TestModuleRefusesTamperedBytes(t *testing.T) {
	reg, js := newRegistry(t)
	obs := modules(t, js, reg)
	ctx := t.Context()
	mod := wasm("genuine")
	rec := deploy(t, reg, spec("fn"), mod)
	if got, err := reg.Module(ctx, rec); err != nil || !bytes.Equal(got, mod) {
		t.Fatalf("module = %d bytes, %v", len(got), err)
	}

	sameSize := bytes.Clone(mod)
	sameSize[len(sameSize)-1] ^= 0xff
	for name, tampered := range map[string][]byte{"same size": sameSize, "other size": append(bytes.Clone(mod), 0)} {
		// Overwrite through the Object Store API: its own digest then matches
		// the new bytes, so only the record's sha256 can catch it.
		if _, err := obs.PutBytes(ctx, rec.SHA256, tampered); err != nil {
			t.Fatal(err)
		}
		got, err := reg.Module(ctx, rec)
		if got != nil {
			t.Errorf("%s: Module returned tampered bytes", name)
		}
		requireErrorIs(t, err, registry.ErrCorruptModule)
	}

	// Deploying the genuine bytes again repairs the object.
	again := deploy(t, reg, spec("fn"), mod)
	if again.SHA256 != rec.SHA256 {
		t.Fatalf("same bytes, different digest")
	}
	if got, err := reg.Module(ctx, rec); err != nil || !bytes.Equal(got, mod) {
		t.Fatalf("module after redeploy: %v", err)
	}

	if err := obs.Delete(ctx, rec.SHA256); err != nil {
		t.Fatal(err)
	}
	_, err := reg.Module(ctx, rec)
	requireErrorIs(t, err, registry.ErrNotFound, jetstream.ErrObjectNotFound)

	bad := rec
	bad.SHA256 = "../etc/passwd"
	_, err = reg.Module(ctx, bad)
	requireErrorIs(t, err, registry.ErrCorruptModule)
}
