package registry_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/registry"
)

func TestRollback(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := t.Context()
	for i := 1; i <= 3; i++ {
		deploy(t, reg, spec("fn"), wasm(fmt.Sprint("fn-", i)))
	}

	rec, err := reg.Rollback(ctx, "fn", 0)
	if err != nil || rec.Version != 2 || !rec.Active {
		t.Fatalf("rollback to previous = v%d active=%v, %v; want v2 active", rec.Version, rec.Active, err)
	}
	if got, _ := reg.Get(ctx, "fn"); got.Version != 2 {
		t.Fatalf("active after rollback = v%d, want v2", got.Version)
	}
	if mod, err := reg.Module(ctx, rec); err != nil || string(mod) != string(wasm("fn-2")) {
		t.Fatalf("module of v2: %v", err)
	}
	if rec, err = reg.Rollback(ctx, "fn", 0); err != nil || rec.Version != 1 {
		t.Fatalf("second rollback = v%d, %v; want v1", rec.Version, err)
	}
	_, err = reg.Rollback(ctx, "fn", 0)
	requireErrorIs(t, err, registry.ErrNotFound)

	if rec, err = reg.Rollback(ctx, "fn", 3); err != nil || rec.Version != 3 || !rec.Active {
		t.Fatalf("rollback to 3 = %+v, %v", rec, err)
	}
	if rec, err = reg.Rollback(ctx, "fn", 3); err != nil || rec.Version != 3 {
		t.Fatalf("rollback to the active version = v%d, %v", rec.Version, err)
	}
	_, err = reg.Rollback(ctx, "fn", 9)
	requireErrorIs(t, err, registry.ErrNotFound)
	_, err = reg.Rollback(ctx, "nope", 0)
	requireErrorIs(t, err, registry.ErrNotFound)

	vs, err := reg.Versions(ctx, "fn")
	if err != nil {
		t.Fatal(err)
	}
	var active []uint64
	for _, v := range vs {
		if v.Active {
			active = append(active, v.Version)
		}
	}
	if !slices.Equal(versionNumbers(vs), []uint64{3, 2, 1}) || !slices.Equal(active, []uint64{3}) {
		t.Fatalf("versions = %v active %v, want [3 2 1] active [3]", versionNumbers(vs), active)
	}

	// After a rollback the next deploy takes the next free number and is active.
	if _, err := reg.Rollback(ctx, "fn", 1); err != nil {
		t.Fatal(err)
	}
	if rec := deploy(t, reg, spec("fn"), wasm("fn-4")); rec.Version != 4 || !rec.Active {
		t.Fatalf("deploy after rollback = v%d active=%v, want v4 active", rec.Version, rec.Active)
	}
}

func TestRollbackOnlyToRetainedVersions(t *testing.T) {
	reg, _ := newRegistry(t, registry.WithRetain(2))
	ctx := t.Context()
	for i := 1; i <= 4; i++ {
		deploy(t, reg, spec("fn"), wasm(fmt.Sprint("fn-", i)))
	}
	vs, err := reg.Versions(ctx, "fn")
	if err != nil || !slices.Equal(versionNumbers(vs), []uint64{4, 3}) {
		t.Fatalf("versions = %v, %v; want [4 3]", versionNumbers(vs), err)
	}
	_, err = reg.Rollback(ctx, "fn", 2)
	requireErrorIs(t, err, registry.ErrNotFound)
	_, err = reg.GetVersion(ctx, "fn", 1)
	requireErrorIs(t, err, registry.ErrNotFound)
	if rec, err := reg.Rollback(ctx, "fn", 0); err != nil || rec.Version != 3 {
		t.Fatalf("rollback = v%d, %v; want v3", rec.Version, err)
	}
	_, err = reg.Rollback(ctx, "fn", 0) // v2 is gone
	requireErrorIs(t, err, registry.ErrNotFound)
}

func TestDelete(t *testing.T) {
	reg, js := newRegistry(t)
	obs := modules(t, js, reg)
	ctx := t.Context()

	shared, own := wasm("shared"), wasm("own")
	a1 := deploy(t, reg, spec("a"), shared)
	a2 := deploy(t, reg, spec("a"), own)
	b1 := deploy(t, reg, spec("b"), shared)
	if a1.SHA256 != b1.SHA256 {
		t.Fatalf("identical bytes got different digests")
	}

	if err := reg.Delete(ctx, "a"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := reg.Get(ctx, "a")
	requireErrorIs(t, err, registry.ErrNotFound, jetstream.ErrKeyNotFound)
	_, err = reg.Versions(ctx, "a")
	requireErrorIs(t, err, registry.ErrNotFound)
	_, err = reg.GetVersion(ctx, "a", 1)
	requireErrorIs(t, err, registry.ErrNotFound)
	if list, err := reg.List(ctx); err != nil || len(list) != 1 || list[0].Name != "b" {
		t.Fatalf("list after delete = %v, %v", list, err)
	}
	if objectExists(t, obs, a2.SHA256) {
		t.Errorf("module only a used was not collected")
	}
	if !objectExists(t, obs, b1.SHA256) {
		t.Fatalf("module shared with b was collected")
	}
	if _, err := reg.Module(ctx, b1); err != nil {
		t.Fatalf("b's module after deleting a: %v", err)
	}
	requireErrorIs(t, reg.Delete(ctx, "a"), registry.ErrNotFound)

	// Version numbers are never reused, so (name, version) names one module.
	if rec := deploy(t, reg, spec("a"), wasm("again")); rec.Version != 3 {
		t.Fatalf("redeploy after delete = v%d, want v3", rec.Version)
	}
	if err := reg.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if objectExists(t, obs, b1.SHA256) {
		t.Errorf("module unreferenced after deleting b was not collected")
	}
}

func TestConcurrentDeploysGetDistinctVersions(t *testing.T) {
	const n = 20
	reg, _ := newRegistry(t, registry.WithRetain(32))
	ctx := t.Context()

	recs := make([]registry.Record, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			recs[i], errs[i] = reg.Deploy(ctx, spec("hot"), wasm(fmt.Sprint("hot-", i)))
		})
	}
	wg.Wait()

	bySHA := make(map[uint64]string)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
		bySHA[recs[i].Version] = recs[i].SHA256
	}
	got := versionNumbers(recs)
	slices.Sort(got)
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("versions allocated = %v, want 1..%d each once", got, n)
	}

	vs, err := reg.Versions(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want)
	if !slices.Equal(versionNumbers(vs), want) {
		t.Fatalf("versions listed = %v, want %v", versionNumbers(vs), want)
	}
	for _, v := range vs {
		if v.SHA256 != bySHA[v.Version] {
			t.Errorf("version %d records %s, its deploy stored %s", v.Version, v.SHA256, bySHA[v.Version])
		}
		if v.Active != (v.Version == n) {
			t.Errorf("version %d active=%v; only the highest may be active", v.Version, v.Active)
		}
		if _, err := reg.Module(ctx, v); err != nil {
			t.Errorf("module of version %d: %v", v.Version, err)
		}
	}
	if rec, err := reg.Get(ctx, "hot"); err != nil || rec.Version != n {
		t.Fatalf("active = v%d, %v; want v%d", rec.Version, err, n)
	}
}

func TestRetentionAndGC(t *testing.T) {
	reg, js := newRegistry(t, registry.WithRetain(3))
	obs := modules(t, js, reg)
	ctx := t.Context()

	b := deploy(t, reg, spec("b"), wasm("v1")) // shares bytes with a's v1
	var a []registry.Record
	for i := 1; i <= 5; i++ {
		a = append(a, deploy(t, reg, spec("a"), wasm(fmt.Sprint("v", i))))
	}

	vs, err := reg.Versions(ctx, "a")
	if err != nil || !slices.Equal(versionNumbers(vs), []uint64{5, 4, 3}) {
		t.Fatalf("versions = %v, %v; want [5 4 3]", versionNumbers(vs), err)
	}
	_, err = reg.GetVersion(ctx, "a", 2)
	requireErrorIs(t, err, registry.ErrNotFound)
	if a[0].SHA256 != b.SHA256 || !objectExists(t, obs, b.SHA256) {
		t.Fatalf("module shared with b was collected")
	}
	if objectExists(t, obs, a[1].SHA256) {
		t.Fatalf("module of trimmed version 2 was not collected")
	}
	for _, r := range a[2:] {
		if !objectExists(t, obs, r.SHA256) {
			t.Fatalf("module of retained version %d was collected", r.Version)
		}
	}

	// GC sweeps objects nothing references, e.g. left by an interrupted deploy.
	orphan := wasm("orphan")
	info, err := obs.PutBytes(ctx, "orphan-object", orphan)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.GC(ctx); err != nil {
		t.Fatalf("gc: %v", err)
	}
	if objectExists(t, obs, info.Name) {
		t.Fatalf("gc left an unreferenced object")
	}
	for _, r := range append([]registry.Record{b}, a[2:]...) {
		if _, err := reg.Module(ctx, r); err != nil {
			t.Fatalf("gc removed referenced module of %s v%d: %v", r.Name, r.Version, err)
		}
	}
}

// Deploys of identical bytes racing retention of other versions with those
// bytes: whatever the interleaving, every retained version stays loadable.
func TestConcurrentSharedBytesStayLoadable(t *testing.T) {
	reg, _ := newRegistry(t, registry.WithRetain(1))
	ctx := t.Context()
	mods := [][]byte{wasm("p"), wasm("q")}

	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := range 24 {
		wg.Go(func() {
			name := []string{"s", "t", "u"}[i%3]
			if _, err := reg.Deploy(ctx, spec(name), mods[i%2]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("deploy: %v", err)
	}
	for _, name := range []string{"s", "t", "u"} {
		vs, err := reg.Versions(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if _, err := reg.Module(ctx, v); err != nil {
				t.Errorf("%s v%d: %v", name, v.Version, err)
			}
		}
	}
}
