package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/registry"
)

// A Delete that runs while a deploy of the same function is between
// writing its version record and writing the active pointer purges the new
// record and collects its module, which nothing references yet. The
// deploy then creates the function anew (Delete does not fence deploys in
// flight), and its pointer must not name bytes that are gone.
func TestDeployRacingDeleteKeepsItsModule(t *testing.T) {
	reg, js := newRegistry(t)
	obs := modules(t, js, reg)
	ctx := t.Context()
	deploy(t, reg, spec("fn"), wasm("v1"))

	var deleted atomic.Bool
	registry.OnStep(reg, func(point string) {
		if point == "deploy:activate" && deleted.CompareAndSwap(false, true) {
			if err := reg.Delete(ctx, "fn"); err != nil {
				t.Errorf("delete during the deploy: %v", err)
			}
		}
	})
	mod := wasm("v2")
	rec := deploy(t, reg, spec("fn"), mod)
	registry.OnStep(reg, nil)
	if !deleted.Load() {
		t.Fatal("the deploy never reached the point before activation")
	}

	active, err := reg.Get(ctx, "fn")
	if err != nil || active.Version != rec.Version || !rec.Active {
		t.Fatalf("active = v%d, %v (deploy returned v%d active=%v); want the deploy's version active", active.Version, err, rec.Version, rec.Active)
	}
	if !objectExists(t, obs, active.SHA256) {
		t.Fatalf("the active pointer names module %s, which is not stored", active.SHA256)
	}
	if got, err := reg.Module(ctx, active); err != nil || !bytes.Equal(got, mod) {
		t.Fatalf("module of the active version: %v", err)
	}
}

// A version whose module object is gone (collected in a race, or deleted
// by hand) is never made active: the rollback is refused, names the
// module and leaves the active version as it was.
func TestRollbackRefusesAVersionWhoseModuleIsGone(t *testing.T) {
	reg, js := newRegistry(t)
	obs := modules(t, js, reg)
	ctx := t.Context()
	v1 := deploy(t, reg, spec("fn"), wasm("v1"))
	v2 := deploy(t, reg, spec("fn"), wasm("v2"))
	if err := obs.Delete(ctx, v1.SHA256); err != nil {
		t.Fatal(err)
	}
	for _, to := range []uint64{1, 0} {
		_, err := reg.Rollback(ctx, "fn", to)
		requireErrorIs(t, err, registry.ErrNotFound, jetstream.ErrObjectNotFound)
		if !strings.Contains(err.Error(), "no longer stored") || !strings.Contains(err.Error(), v1.SHA256) {
			t.Errorf("rollback to %d: %q does not say the module %s is gone", to, err, v1.SHA256)
		}
		if active, err := reg.Get(ctx, "fn"); err != nil || active.Version != v2.Version {
			t.Fatalf("active after a refused rollback = v%d, %v; want v%d", active.Version, err, v2.Version)
		}
	}
}

// The object can also go between the rollback's check and its write of the
// pointer (a trim or Delete purged the version record and collected the
// object just then). The rollback sees it after the write and puts the
// previous active version back.
func TestRollbackRacingCollectionIsUndone(t *testing.T) {
	reg, js := newRegistry(t)
	obs := modules(t, js, reg)
	ctx := t.Context()
	v1 := deploy(t, reg, spec("fn"), wasm("v1"))
	v2 := deploy(t, reg, spec("fn"), wasm("v2"))
	w, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := nextEvent(t, w); ev.Type != registry.EventPut || ev.Record.Version != v2.Version {
		t.Fatalf("initial event = %+v", ev)
	}
	if ev := nextEvent(t, w); ev.Type != registry.EventReady {
		t.Fatalf("event = %+v, want ready", ev)
	}

	registry.OnStep(reg, func(point string) {
		if point == "rollback:write" {
			if err := obs.Delete(context.WithoutCancel(ctx), v1.SHA256); err != nil {
				t.Errorf("delete object: %v", err)
			}
		}
	})
	_, err = reg.Rollback(ctx, "fn", 1)
	registry.OnStep(reg, nil)
	requireErrorIs(t, err, registry.ErrNotFound)

	if active, err := reg.Get(ctx, "fn"); err != nil || active.Version != v2.Version {
		t.Fatalf("active after the undone rollback = v%d, %v; want v%d", active.Version, err, v2.Version)
	}
	if _, err := reg.Module(ctx, v2); err != nil {
		t.Fatalf("module of the active version: %v", err)
	}
	// A watcher saw the short-lived pointer and then the previous version
	// again, so a node converges on what is stored.
	var last registry.Event
	for last.Record.Version != v2.Version {
		last = nextEvent(t, w)
		if last.Type != registry.EventPut {
			t.Fatalf("event = %+v, want puts", last)
		}
	}
}

// Rolling back to a version past the retention window is refused, and the
// error says which versions can be rolled back to.
func TestRollbackPastRetentionNamesTheRetainedVersions(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := t.Context()
	for i := 1; i <= registry.DefaultRetain+2; i++ {
		deploy(t, reg, spec("fn"), wasm(fmt.Sprint("v", i)))
	}
	_, err := reg.Rollback(ctx, "fn", 2) // the 11th newest
	requireErrorIs(t, err, registry.ErrNotFound)
	if !strings.Contains(err.Error(), "retained versions: 12, 11, 10, 9, 8, 7, 6, 5, 4, 3") {
		t.Errorf("error %q does not list the retained versions", err)
	}
	if rec, err := reg.Rollback(ctx, "fn", 3); err != nil || rec.Version != 3 {
		t.Fatalf("rollback to the 10th newest = v%d, %v", rec.Version, err)
	}
}

// The Object Store leaves a metadata message behind for each object it
// deletes. Collection purges it, so deploying and deleting new code again
// and again does not grow the modules bucket; GC sweeps markers left before.
func TestCollectedModulesLeaveNothingBehind(t *testing.T) {
	reg, js := newRegistry(t)
	obs := modules(t, js, reg)
	ctx := t.Context()
	stream, err := js.Stream(ctx, registry.ModulesStream(reg.Env()))
	if err != nil {
		t.Fatal(err)
	}
	msgs := func() uint64 {
		t.Helper()
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	for i := range 5 {
		deploy(t, reg, spec("fn"), wasm(fmt.Sprint("build-", i)))
		if err := reg.Delete(ctx, "fn"); err != nil {
			t.Fatal(err)
		}
	}
	if n := msgs(); n != 0 {
		t.Fatalf("modules stream holds %d messages after every module was collected, want 0", n)
	}

	// A marker left by a delete outside the registry goes with the next GC;
	// an object deleted and stored again keeps its new metadata.
	if _, err := obs.PutBytes(ctx, "old", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	kept := deploy(t, reg, spec("kept"), wasm("kept"))
	if err := obs.Delete(ctx, kept.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, kept.SHA256, wasm("kept")); err != nil {
		t.Fatal(err)
	}
	if err := reg.GC(ctx); err != nil {
		t.Fatalf("gc: %v", err)
	}
	if _, err := obs.GetInfo(ctx, "old", jetstream.GetObjectInfoShowDeleted()); err == nil {
		t.Errorf("gc left the delete marker of object old")
	}
	if _, err := reg.Module(ctx, kept); err != nil {
		t.Fatalf("module stored again after a delete: %v", err)
	}
	if n := msgs(); n != 2 {
		t.Errorf("modules stream holds %d messages, want 2 (kept's metadata and chunk)", n)
	}
}

// Deploys, rollbacks and deletes of one function from several writers at
// once, with a retention of 2 so every deploy trims and collects: whatever
// the interleaving, no active or retained version names a module that is
// not stored, and a watcher ends on the registry's state.
func TestConcurrentChangesLeaveNoDanglingModule(t *testing.T) {
	reg, _ := newRegistry(t, registry.WithRetain(2))
	ctx := t.Context()
	w, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	const writers, ops = 4, 12
	errs := make(chan error, writers*ops)
	var slowest atomic.Int64 // nanoseconds of the slowest change
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range ops {
				var err error
				start := time.Now()
				switch (g + i) % 4 {
				case 0, 1:
					// Few distinct modules, so bytes are shared between
					// versions and re-deployed while being collected.
					_, err = reg.Deploy(ctx, spec("fn"), wasm(fmt.Sprint("m", (g*ops+i)%3)))
				case 2:
					_, err = reg.Rollback(ctx, "fn", 0)
				case 3:
					err = reg.Delete(ctx, "fn")
				}
				for d := int64(time.Since(start)); ; {
					cur := slowest.Load()
					if d <= cur || slowest.CompareAndSwap(cur, d) {
						break
					}
				}
				if err != nil && !errors.Is(err, registry.ErrNotFound) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("change: %v", err)
	}
	// Collections of one module racing each other must not wait out a
	// read of chunks another one purged (10 s and more).
	if d := time.Duration(slowest.Load()); d > 8*time.Second {
		t.Errorf("the slowest change took %v", d)
	}

	active, getErr := reg.Get(ctx, "fn")
	exists := getErr == nil
	switch {
	case errors.Is(getErr, registry.ErrNotFound):
	case getErr != nil:
		t.Fatal(getErr)
	default:
		if _, err := reg.Module(ctx, active); err != nil {
			t.Errorf("active v%d: %v", active.Version, err)
		}
	}
	vs, err := reg.Versions(ctx, "fn")
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		t.Fatal(err)
	}
	for _, v := range vs {
		if _, err := reg.Module(ctx, v); err != nil {
			t.Errorf("retained v%d: %v", v.Version, err)
		}
	}

	// The watcher's view converges on the final state (nextEvent fails
	// the test if it stops short of it).
	seen := map[string]uint64{}
	for {
		ev := nextEvent(t, w)
		switch ev.Type {
		case registry.EventPut:
			seen[ev.Name] = ev.Record.Version
		case registry.EventDelete:
			delete(seen, ev.Name)
		}
		v, ok := seen["fn"]
		if ok == exists && v == active.Version && len(seen) <= 1 {
			return
		}
	}
}

// Two collections of one module at once (a Delete and a deploy of another
// function releasing the same bytes): one deletes the object while the
// other reads it for its restore copy, purging the chunks the read waits
// for. The read must end when the object goes, not at nats.go's deadline:
// the Delete or deploy making the collection would take 30 s to answer.
func TestCollectionEndsWhenTheObjectGoesMidRead(t *testing.T) {
	reg, js := newRegistry(t)
	obs := modules(t, js, reg)
	ctx := t.Context()
	stream, err := js.Stream(ctx, registry.ModulesStream(reg.Env()))
	if err != nil {
		t.Fatal(err)
	}
	rec := deploy(t, reg, spec("fn"), wasm("shared"))
	info, err := obs.GetInfo(ctx, rec.SHA256)
	if err != nil {
		t.Fatal(err)
	}

	var once atomic.Bool
	otherDone := make(chan error, 1)
	registry.OnStep(reg, func(point string) {
		if point != "collect:read" || !once.CompareAndSwap(false, true) {
			return
		}
		// Hold the read: its chunks are gone, its metadata is not yet.
		chunks := "$O." + registry.ModulesBucket(reg.Env()) + ".C." + info.NUID
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(chunks)); err != nil {
			t.Errorf("purge chunks: %v", err)
		}
		// The other collector deletes the object once the read has
		// started (its ordered consumer exists).
		go func() {
			otherDone <- func() error {
				for {
					si, err := stream.Info(ctx)
					if err != nil {
						return err
					}
					if si.State.Consumers > 0 {
						return obs.Delete(ctx, rec.SHA256)
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()
		}()
	})
	start := time.Now()
	if err := reg.Delete(ctx, "fn"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	registry.OnStep(reg, nil)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("delete took %v: the collection waited for chunks that were purged", took)
	}
	if !once.Load() {
		t.Fatal("the collection never read the module")
	}
	if err := <-otherDone; err != nil {
		t.Fatalf("the other collector: %v", err)
	}
	if objectExists(t, obs, rec.SHA256) {
		t.Errorf("module still stored")
	}
}
