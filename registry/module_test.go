package registry_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

// A module whose chunks never come (the consumer that carries them was
// lost with its server; here they are purged) fails the read once no bytes
// have come for the registry's bound, and a caller that gives up is
// answered at once.
func TestModuleReadIsBounded(t *testing.T) {
	reg, js := newRegistry(t)
	ctx := t.Context()
	rec := deploy(t, reg, spec("fn"), wasm("chunks"))
	stream, err := js.Stream(ctx, registry.ModulesStream(reg.Env()))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject("$O."+registry.ModulesBucket(reg.Env())+".C.>")); err != nil {
		t.Fatal(err)
	}

	registry.GiveUpStalledReadsAfter(reg, 300*time.Millisecond)
	start := time.Now()
	if _, err := reg.Module(ctx, rec); err == nil || !strings.Contains(err.Error(), "read stalled") || time.Since(start) > 3*time.Second {
		t.Fatalf("Module = %v after %v, want a stalled read after 300ms", err, time.Since(start))
	}

	registry.GiveUpStalledReadsAfter(reg, time.Minute)
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	if _, err := reg.Module(cctx, rec); !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("Module = %v after %v, want context.Canceled soon after the cancel", err, time.Since(start))
	}
}
