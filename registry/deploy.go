package registry

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/protocol"
)

// Deploy stores module (already validated by the caller, e.g. with
// wasmhost.Validate) as a new version of spec.Name and makes it active.
//
// Every call creates a new immutable version, numbered 1, 2, 3, ... per
// function; concurrent deploys of one function get distinct numbers and none
// is lost. When concurrent deploys finish out of order the highest version
// stays active; the returned record has Active false if a newer deploy
// superseded it before it could be activated. Identical bytes are stored once.
// Afterwards versions beyond the retention window are deleted and module
// objects no longer referenced are garbage-collected; failures there are
// logged, not returned, since the deploy itself succeeded (GC sweeps later).
// A Delete of the function running meanwhile may purge the new version's
// record; the deploy then creates the function anew, and its module is
// stored again if that Delete collected it.
//
// If Deploy fails after writing the version record (e.g. ctx ends), that
// version stays retained and can be activated with Rollback, but is not active.
func (r *Registry) Deploy(ctx context.Context, spec Spec, module []byte) (Record, error) {
	if err := spec.Validate(); err != nil {
		return Record{}, fmt.Errorf("deploy function[%s]: %w", spec.Name, err)
	}
	if len(module) == 0 {
		return Record{}, fmt.Errorf("deploy function[%s]: %w: module: empty", spec.Name, ErrInvalidSpec)
	}
	sum := sha256.Sum256(module)
	sha := hex.EncodeToString(sum[:])

	// Upload before the record exists, so a record never names bytes that
	// were not stored.
	if err := r.ensureModule(ctx, sha, module); err != nil {
		return Record{}, fmt.Errorf("deploy function[%s]: %w", spec.Name, err)
	}
	v, err := r.nextVersion(ctx, spec.Name)
	if err != nil {
		return Record{}, fmt.Errorf("deploy function[%s]: %w", spec.Name, err)
	}
	rec := newRecord(spec, v, sha, int64(len(module)), time.Now())
	data, err := encodeRecord(rec)
	if err != nil {
		return Record{}, fmt.Errorf("deploy %w", err)
	}
	// Create, not Put: a version record is written exactly once.
	if _, err := r.kv.Create(ctx, versionKey(rec.Name, v), data); err != nil {
		if isConflict(err) {
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		}
		return Record{}, fmt.Errorf("deploy function[%s] version %d: write record: %w", rec.Name, v, err)
	}
	// Check the bytes again now that the record references them: a garbage
	// collection that scanned references before our record existed may have
	// deleted the object after the first check (see collectOne).
	if err := r.ensureModule(ctx, sha, module); err != nil {
		return Record{}, fmt.Errorf("deploy function[%s] version %d: %w", rec.Name, v, err)
	}
	r.step("deploy:activate")
	activated, err := r.activate(ctx, rec)
	if err != nil {
		return Record{}, fmt.Errorf("deploy function[%s] version %d: %w", rec.Name, v, err)
	}
	rec.Active = activated
	// And again once the pointer names them: a Delete of the function (or
	// a trim) may have purged our version record after the check above, and
	// then collected the object before the pointer existed. The pointer is
	// a reference of its own, so the argument of collectOne holds for it
	// only with a check after it is written.
	if err := r.ensureModule(ctx, sha, module); err != nil {
		return Record{}, fmt.Errorf("deploy function[%s] version %d: %w", rec.Name, v, err)
	}

	candidates, err := r.trim(ctx, rec.Name)
	if err != nil {
		r.log.Warn("registry: retention failed", "function", rec.Name, "err", err)
	}
	if err := r.collect(ctx, candidates); err != nil {
		r.log.Warn("registry: module garbage collection failed", "function", rec.Name, "err", err)
	}
	return rec, nil
}

// nextVersion allocates the next version number of name with a
// revision-checked update of fn.{name}.seq: of two deploys that read the same
// counter, one update fails and that deploy reads again.
func (r *Registry) nextVersion(ctx context.Context, name string) (uint64, error) {
	key := seqKey(name)
	var err error
	for attempt := 0; attempt < casMaxAttempt; attempt++ {
		var e jetstream.KeyValueEntry
		e, err = r.kv.Get(ctx, key)
		switch {
		case isKeyNotFound(err):
			if _, err = r.kv.Create(ctx, key, []byte("1")); err == nil {
				return 1, nil
			}
		case err != nil:
			return 0, fmt.Errorf("allocate version: %w", err)
		default:
			cur, perr := strconv.ParseUint(string(e.Value()), 10, 64)
			if perr != nil {
				return 0, fmt.Errorf("allocate version: key %s: %q is not a version number", key, truncate(string(e.Value()), 20))
			}
			next := cur + 1
			if _, err = r.kv.Update(ctx, key, []byte(strconv.FormatUint(next, 10)), e.Revision()); err == nil {
				return next, nil
			}
		}
		if !isConflict(err) {
			return 0, fmt.Errorf("allocate version: %w", err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return 0, fmt.Errorf("allocate version: %w", err)
		}
	}
	return 0, fmt.Errorf("allocate version: %w after %d attempts: %w", ErrConflict, casMaxAttempt, err)
}

// activate points fn.{name}.active at rec unless a deploy of a higher version
// already did. It reports whether rec became active.
func (r *Registry) activate(ctx context.Context, rec Record) (bool, error) {
	key := activeKey(rec.Name)
	data, err := encodePointer(rec, rec.Version)
	if err != nil {
		return false, err
	}
	for attempt := 0; attempt < casMaxAttempt; attempt++ {
		var e jetstream.KeyValueEntry
		e, err = r.kv.Get(ctx, key)
		switch {
		case isKeyNotFound(err):
			_, err = r.kv.Create(ctx, key, data)
		case err != nil:
			return false, fmt.Errorf("activate: %w", err)
		default:
			p, derr := decodePointer(e)
			if derr != nil {
				// Overwrite a pointer nobody can read; the revision check
				// still protects concurrent writers.
				r.log.Warn("registry: replacing undecodable active record", "function", rec.Name, "err", derr)
			} else if p.Head >= rec.Version {
				return false, nil // a newer deploy got there first
			}
			_, err = r.kv.Update(ctx, key, data, e.Revision())
		}
		if err == nil {
			return true, nil
		}
		if !isConflict(err) {
			return false, fmt.Errorf("activate: %w", err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return false, fmt.Errorf("activate: %w", err)
		}
	}
	return false, fmt.Errorf("activate: %w after %d attempts: %w", ErrConflict, casMaxAttempt, err)
}

// Rollback makes a retained version of function name active again and
// returns it. to == 0 means the newest retained version below the active one.
// A version that is not retained, or no earlier version, is ErrNotFound, and
// so is a version whose module object is no longer stored: the pointer never
// names bytes that are gone. Rolling back to the active version changes
// nothing.
func (r *Registry) Rollback(ctx context.Context, name string, to uint64) (Record, error) {
	if err := protocol.ValidateName(name); err != nil {
		return Record{}, fmt.Errorf("rollback function[%s]: %w", name, err)
	}
	var err error
	for attempt := 0; attempt < casMaxAttempt; attempt++ {
		e, p, gerr := r.getPointerEntry(ctx, name)
		if gerr != nil {
			return Record{}, fmt.Errorf("rollback %w", gerr)
		}
		target := to
		if target == 0 {
			if target, err = r.previousVersion(ctx, name, p.Version); err != nil {
				return Record{}, fmt.Errorf("rollback %w", err)
			}
		}
		if target == p.Version {
			return p.Record, nil
		}
		rec, gerr := r.getVersion(ctx, name, target)
		if gerr != nil {
			if errors.Is(gerr, ErrNotFound) {
				gerr = fmt.Errorf("%w; %s", gerr, r.retainedNote(ctx, name))
			}
			return Record{}, fmt.Errorf("rollback %w", gerr)
		}
		// A version record outlives its module only through a race or an
		// operator deleting objects by hand; activating it would leave
		// every node failing to load it.
		if err := r.moduleStored(ctx, rec); err != nil {
			return Record{}, fmt.Errorf("rollback function[%s] to version %d: %w", name, target, err)
		}
		data, eerr := encodePointer(rec, p.Head)
		if eerr != nil {
			return Record{}, fmt.Errorf("rollback %w", eerr)
		}
		r.step("rollback:write")
		var rev uint64
		if rev, err = r.kv.Update(ctx, activeKey(name), data, e.Revision()); err == nil {
			if err := r.confirmRollback(ctx, name, rec, e.Value(), rev); err != nil {
				return Record{}, err
			}
			rec.Active = true
			return rec, nil
		}
		if !isConflict(err) {
			return Record{}, fmt.Errorf("rollback function[%s] to version %d: %w", name, target, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return Record{}, fmt.Errorf("rollback function[%s]: %w", name, err)
		}
	}
	return Record{}, fmt.Errorf("rollback function[%s]: %w after %d attempts: %w", name, ErrConflict, casMaxAttempt, err)
}

// confirmRollback checks, after the pointer was moved to rec (revision rev),
// that rec's module is still stored. The check before the write can pass
// while a trim or Delete purges rec's version record and collects its
// object; a collection that finishes before this check is seen here (one
// that finishes later sees the pointer and restores the bytes, see
// collectOne). If the object is gone the pointer is put back to prev,
// revision-checked so a later change is never undone.
func (r *Registry) confirmRollback(ctx context.Context, name string, rec Record, prev []byte, rev uint64) error {
	err := r.moduleStored(ctx, rec)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		// Cannot tell (NATS trouble): the check before the write passed,
		// and a node reports a module it cannot load.
		r.log.Warn("registry: rollback could not confirm the module is stored", "function", name, "version", rec.Version, "err", err)
		return nil
	}
	err = fmt.Errorf("rollback function[%s] to version %d: %w", name, rec.Version, err)
	if _, uerr := r.kv.Update(ctx, activeKey(name), prev, rev); uerr != nil && !isConflict(uerr) {
		return errors.Join(err, fmt.Errorf("rollback function[%s]: restore the previous active version: %w", name, uerr))
	}
	return err
}

// moduleStored checks that the modules bucket holds an object for rec with
// its size and sha256, by the object's metadata (Module checks the bytes
// themselves when they are loaded).
func (r *Registry) moduleStored(ctx context.Context, rec Record) error {
	what := fmt.Sprintf("module[%s]", truncate(rec.SHA256, 64))
	if !validSHA256(rec.SHA256) {
		return fmt.Errorf("%s: %w: not a lowercase hex sha256", what, ErrCorruptModule)
	}
	info, err := r.obs.GetInfo(ctx, rec.SHA256)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return &notFoundError{what: what, note: " (its bytes are no longer stored: deploy the module again)", cause: err}
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	raw, _ := hex.DecodeString(rec.SHA256)
	if int64(info.Size) != rec.Size || info.Digest != "SHA-256="+base64.URLEncoding.EncodeToString(raw) {
		return fmt.Errorf("%s: %w: the stored object has %d bytes and digest %s, the record says %d bytes", what, ErrCorruptModule, info.Size, info.Digest, rec.Size)
	}
	return nil
}

// retainedNote lists the retained versions of name, for the error of a
// rollback to one that is not.
func (r *Registry) retainedNote(ctx context.Context, name string) string {
	entries, err := r.scan(ctx, versionsFilter(name))
	if err != nil {
		return fmt.Sprintf("the registry keeps the newest %d versions and the active one", r.retain)
	}
	var vs []uint64
	for _, e := range entries {
		if v, ok := versionOfKey(e.Key()); ok {
			vs = append(vs, v)
		}
	}
	slices.SortFunc(vs, func(a, b uint64) int { return cmp.Compare(b, a) })
	const show = 12
	list := make([]string, 0, show+1)
	for i, v := range vs {
		if i == show {
			list = append(list, "...")
			break
		}
		list = append(list, strconv.FormatUint(v, 10))
	}
	if len(list) == 0 {
		list = append(list, "none")
	}
	return fmt.Sprintf("retained versions: %s (the registry keeps the newest %d and the active one)", strings.Join(list, ", "), r.retain)
}

// previousVersion returns the newest retained version of name below active.
func (r *Registry) previousVersion(ctx context.Context, name string, active uint64) (uint64, error) {
	entries, err := r.scan(ctx, versionsFilter(name))
	if err != nil {
		return 0, fmt.Errorf("function[%s]: versions: %w", name, err)
	}
	var prev uint64
	for _, e := range entries {
		if v, ok := versionOfKey(e.Key()); ok && v < active && v > prev {
			prev = v
		}
	}
	if prev == 0 {
		return 0, fmt.Errorf("function[%s]: no retained version before %d: %w", name, active, ErrNotFound)
	}
	return prev, nil
}

// Delete removes function name: first its active pointer (so watchers stop
// serving it), then every version record, then the module objects nothing
// else references. Version numbers are not reused by a later deploy of the
// same name. A function with neither pointer nor versions is ErrNotFound.
// A deploy of the same name that finishes after Delete creates the function
// anew; Delete does not fence deploys already in flight.
func (r *Registry) Delete(ctx context.Context, name string) error {
	if err := protocol.ValidateName(name); err != nil {
		return fmt.Errorf("delete function[%s]: %w", name, err)
	}
	candidates := make(map[string]struct{})
	found := false
	var err error
	for attempt := 0; ; attempt++ {
		if attempt == casMaxAttempt {
			return fmt.Errorf("delete function[%s]: %w after %d attempts: %w", name, ErrConflict, casMaxAttempt, err)
		}
		var e jetstream.KeyValueEntry
		e, err = r.kv.Get(ctx, activeKey(name))
		if isKeyNotFound(err) {
			break
		}
		if err != nil {
			return fmt.Errorf("delete function[%s]: read active: %w", name, err)
		}
		// A delete marker, not a purge: the pointer's history stays as the
		// audit trail. Revision-checked, so a deploy that moved the pointer
		// meanwhile makes us look again instead of deleting blind.
		if err = r.kv.Delete(ctx, activeKey(name), jetstream.LastRevision(e.Revision())); err == nil {
			found = true
			if p, derr := decodePointer(e); derr == nil {
				candidates[p.SHA256] = struct{}{}
			}
			break
		}
		if !isConflict(err) {
			return fmt.Errorf("delete function[%s]: %w", name, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("delete function[%s]: %w", name, err)
		}
	}

	entries, err := r.scan(ctx, versionsFilter(name))
	if err != nil {
		return fmt.Errorf("delete function[%s]: versions: %w", name, err)
	}
	for _, e := range entries {
		if rec, derr := decodeRecord(e); derr == nil {
			candidates[rec.SHA256] = struct{}{}
		}
		if err := r.kv.Purge(ctx, e.Key(), r.purgeOpts...); err != nil {
			return fmt.Errorf("delete function[%s]: purge %s: %w", name, e.Key(), err)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("delete function[%s]: %w", name, ErrNotFound)
	}
	if err := r.collect(ctx, candidates); err != nil {
		r.log.Warn("registry: module garbage collection failed", "function", name, "err", err)
	}
	return nil
}

// backoff waits a short, jittered, growing time before the next attempt of a
// revision-checked write, so that many writers contending for one key spread
// out instead of colliding in lockstep.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(min(attempt+1, 20)) * int64(time.Millisecond/2)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
