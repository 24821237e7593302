package registry

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

func newInternal(t *testing.T, opts ...Option) (*Registry, jetstream.JetStream) {
	t.Helper()
	js := testutil.JetStream(t, testutil.Connect(t, testutil.RunNATS(t)))
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	r, err := New(t.Context(), js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r, js
}

func testSpec(name string) Spec {
	return Spec{Name: name, Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter)}
}

// isConflict must recognise how a real server reports each lost revision
// check, including Create on an existing key, which does not map to
// ErrKeyRevisionMismatch.
func TestIsConflictOnRealErrors(t *testing.T) {
	r, _ := newInternal(t)
	ctx := t.Context()
	rev, err := r.kv.Create(ctx, "k", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.kv.Create(ctx, "k", []byte("2"))
	if !isConflict(err) {
		t.Errorf("Create on an existing key: %v not a conflict", err)
	}
	if _, err = r.kv.Update(ctx, "k", []byte("2"), rev+10); !isConflict(err) {
		t.Errorf("Update with a stale revision: %v not a conflict", err)
	}
	if err = r.kv.Delete(ctx, "k", jetstream.LastRevision(rev+10)); !isConflict(err) {
		t.Errorf("Delete with a stale revision: %v not a conflict", err)
	}
	if _, err = r.kv.Get(ctx, "nope"); isConflict(err) || !isKeyNotFound(err) {
		t.Errorf("Get of a missing key: %v", err)
	}
	if isConflict(errors.New("other")) || isConflict(nil) {
		t.Errorf("unrelated errors count as conflicts")
	}
}

// Retention never deletes the active version, even when it is older than the
// retention window (reachable after a rollback raced a deploy).
func TestTrimKeepsActiveVersion(t *testing.T) {
	r, _ := newInternal(t, WithRetain(3))
	ctx := t.Context()
	for _, tag := range []string{"1", "2", "3"} {
		if _, err := r.Deploy(ctx, testSpec("fn"), []byte("module-"+tag)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Rollback(ctx, "fn", 1); err != nil {
		t.Fatal(err)
	}
	r.retain = 1
	candidates, err := r.trim(ctx, "fn")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := r.Versions(ctx, "fn")
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, v := range vs {
		got = append(got, v.Version)
	}
	if !slices.Equal(got, []uint64{3, 1}) || !vs[1].Active {
		t.Fatalf("versions after trim = %v, want [3 1] with 1 active", got)
	}
	if len(candidates) != 1 {
		t.Fatalf("trim released %d modules, want 1 (version 2's)", len(candidates))
	}
}

// The garbage-collection race: GC scanned references before a deploy of the
// same bytes wrote its record, so it deletes an object that is now in use.
// collectOne re-checks after deleting and puts the bytes back.
func TestCollectRestoresObjectReferencedMeanwhile(t *testing.T) {
	r, _ := newInternal(t)
	ctx := t.Context()
	mod := bytes.Repeat([]byte("racy"), 1000)
	rec, err := r.Deploy(ctx, testSpec("fn"), mod)
	if err != nil {
		t.Fatal(err)
	}
	// As if the reference scan had missed rec: collect the object anyway.
	if err := r.collectOne(ctx, rec.SHA256); err != nil {
		t.Fatalf("collect: %v", err)
	}
	got, err := r.Module(ctx, rec)
	if err != nil || !bytes.Equal(got, mod) {
		t.Fatalf("module after racing collection: %v", err)
	}

	// Unreferenced, it is really deleted.
	if err := r.Delete(ctx, "fn"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.obs.GetInfo(ctx, rec.SHA256); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("object after delete: %v, want not found", err)
	}
}

// Deploy re-checks the object after writing its record: if it vanished in
// between (a collection that finished before that check), it is re-uploaded.
func TestEnsureModuleReuploadsMissingOrDamaged(t *testing.T) {
	r, _ := newInternal(t)
	ctx := t.Context()
	mod := []byte("module bytes")
	rec, err := r.Deploy(ctx, testSpec("fn"), mod)
	if err != nil {
		t.Fatal(err)
	}
	// Intact bytes are not uploaded again (the Object Store would give a
	// re-upload a new NUID).
	before, err := r.obs.GetInfo(ctx, rec.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ensureModule(ctx, rec.SHA256, mod); err != nil {
		t.Fatal(err)
	}
	if after, err := r.obs.GetInfo(ctx, rec.SHA256); err != nil || after.NUID != before.NUID {
		t.Fatalf("intact object was uploaded again (%v)", err)
	}

	if err := r.obs.Delete(ctx, rec.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := r.ensureModule(ctx, rec.SHA256, mod); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Module(ctx, rec); err != nil {
		t.Fatalf("after re-upload: %v", err)
	}
	if _, err := r.obs.PutBytes(ctx, rec.SHA256, []byte("damaged bytes")); err != nil {
		t.Fatal(err)
	}
	if err := r.ensureModule(ctx, rec.SHA256, mod); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Module(ctx, rec); err != nil {
		t.Fatalf("after repairing damaged object: %v", err)
	}
}

func TestMarkerTTLEnabled(t *testing.T) {
	r, _ := newInternal(t)
	if len(r.purgeOpts) == 0 {
		t.Fatalf("bucket created without marker TTLs; purge markers of trimmed versions would never expire")
	}
}

// Deploys finishing out of order: the lower version must not replace a
// higher one that a deploy already activated.
func TestActivateOnlyMovesForward(t *testing.T) {
	r, _ := newInternal(t)
	ctx := t.Context()
	v1, err := r.Deploy(ctx, testSpec("fn"), []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Deploy(ctx, testSpec("fn"), []byte("two")); err != nil {
		t.Fatal(err)
	}
	v1.Active = false
	activated, err := r.activate(ctx, v1)
	if err != nil || activated {
		t.Fatalf("late activation of v1 = %v, %v; want refused", activated, err)
	}
	if cur, err := r.Get(ctx, "fn"); err != nil || cur.Version != 2 {
		t.Fatalf("active = v%d, %v; want v2", cur.Version, err)
	}
	// A rollback does not lower the bar: v2 stays the highest deployed.
	if _, err := r.Rollback(ctx, "fn", 1); err != nil {
		t.Fatal(err)
	}
	p, _, err := r.getPointer(ctx, "fn")
	if err != nil || p.Version != 1 || p.Head != 2 {
		t.Fatalf("pointer after rollback = v%d head %d, %v; want v1 head 2", p.Version, p.Head, err)
	}
}
