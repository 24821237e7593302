package registry

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// gcTimeout bounds one object's delete-recheck-restore sequence, which runs
// detached from the caller's context so a cancellation cannot split it.
const gcTimeout = 30 * time.Second

// trim deletes the versions of name beyond the newest r.retain, except the
// active one, and returns the module digests they referenced.
func (r *Registry) trim(ctx context.Context, name string) (map[string]struct{}, error) {
	var active uint64
	switch p, _, err := r.getPointer(ctx, name); {
	case err == nil:
		active = p.Version
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	entries, err := r.scan(ctx, versionsFilter(name))
	if err != nil {
		return nil, fmt.Errorf("function[%s]: versions: %w", name, err)
	}
	if len(entries) <= r.retain {
		return nil, nil
	}
	type version struct {
		v   uint64
		key string
		sha string
	}
	vs := make([]version, 0, len(entries))
	for _, e := range entries {
		v, ok := versionOfKey(e.Key())
		if !ok {
			continue
		}
		ver := version{v: v, key: e.Key()}
		if rec, err := decodeRecord(e); err == nil {
			ver.sha = rec.SHA256
		}
		vs = append(vs, ver)
	}
	slices.SortFunc(vs, func(a, b version) int { return cmp.Compare(b.v, a.v) })

	candidates := make(map[string]struct{})
	for i, ver := range vs {
		if i < r.retain || ver.v == active {
			continue
		}
		// A rollback racing this trim may point at ver after we purge it;
		// the pointer carries the whole record and references counts
		// pointers too, so that version stays usable (and a rollback
		// that finds its module collected all the same undoes itself,
		// see confirmRollback).
		if err := r.kv.Purge(ctx, ver.key, r.purgeOpts...); err != nil {
			return candidates, fmt.Errorf("function[%s]: purge version %d: %w", name, ver.v, err)
		}
		r.log.Debug("registry: version trimmed", "function", name, "version", ver.v)
		if ver.sha != "" {
			candidates[ver.sha] = struct{}{}
		}
	}
	return candidates, nil
}

// references returns the module digests named by any version record or
// active pointer of any function.
func (r *Registry) references(ctx context.Context) (map[string]struct{}, error) {
	entries, err := r.scan(ctx, allVersions, allActive)
	if err != nil {
		return nil, fmt.Errorf("module references: %w", err)
	}
	refs := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		var ref struct {
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(e.Value(), &ref); err != nil {
			// Unreadable records could reference anything: refuse to
			// collect rather than risk deleting live bytes.
			return nil, fmt.Errorf("module references: record[%s]: decode: %w", e.Key(), err)
		}
		refs[ref.SHA256] = struct{}{}
	}
	return refs, nil
}

// collect deletes the candidate module objects that no record references.
func (r *Registry) collect(ctx context.Context, candidates map[string]struct{}) error {
	if len(candidates) == 0 {
		return nil
	}
	refs, err := r.references(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, sha := range slices.Sorted(maps.Keys(candidates)) {
		if _, used := refs[sha]; used {
			continue
		}
		if err := r.collectOne(ctx, sha); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// GC deletes every module object that no version record or active pointer
// references, and the delete markers of objects already deleted. Deploy and
// Delete collect what they release; GC sweeps what an interrupted one (or a
// registry before delete markers were purged) left behind. It is safe to
// run while others deploy.
func (r *Registry) GC(ctx context.Context) error {
	objs, err := r.obs.List(ctx, jetstream.ListObjectsShowDeleted())
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gc: list modules: %w", err)
	}
	candidates := make(map[string]struct{}, len(objs))
	var errs []error
	for _, o := range objs {
		if !o.Deleted {
			candidates[o.Name] = struct{}{}
		} else if err := r.purgeDeleteMarker(ctx, o.Name); err != nil {
			errs = append(errs, fmt.Errorf("module[%s]: %w", o.Name, err))
		}
	}
	if err := r.collect(ctx, candidates); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}

// collectOne deletes the object sha, which no record referenced when the
// caller scanned.
//
// The race guarded against: a Deploy of identical bytes finds the object
// present (so does not upload it) and writes its version record after our
// scan; deleting the object would leave that record naming nothing. Deploy
// checks the object again after writing its record; that covers every
// deletion finishing before its check. For a deletion finishing after it, we
// keep a copy of the bytes, scan the references again once the object is
// deleted, and put the bytes back if a record now names them. Any record
// written after our first scan is written either before our second scan (we
// restore) or after our deletion completed (Deploy's check re-uploads).
func (r *Registry) collectOne(ctx context.Context, sha string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), gcTimeout)
	defer cancel()

	info, err := r.obs.GetInfo(ctx, sha)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("module[%s]: read before delete: %w", sha, err)
	}
	r.step("collect:read")
	// Another collector (a Delete or deploy of another function released
	// the same bytes) may delete the object while we read it, purging the
	// chunks the read waits for: it is then theirs to finish, and a new
	// upload (a new NUID) is a deploy's, which references it.
	gone := func(ctx context.Context) bool {
		now, err := r.obs.GetInfo(ctx, sha)
		return errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && now.NUID != info.NUID)
	}
	data, err := r.readObject(ctx, sha, int64(info.Size), gone)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound), errors.Is(err, errObjectGone):
		return nil
	case errors.Is(err, jetstream.ErrDigestMismatch), errors.Is(err, errObjectTooLarge):
		data = nil // damaged: nothing worth restoring
	case err != nil:
		return fmt.Errorf("module[%s]: read before delete: %w", sha, err)
	}
	if data != nil {
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != sha {
			data = nil // not the bytes its name promises: nothing worth restoring
		}
	}
	if err := r.obs.Delete(ctx, sha); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("module[%s]: delete: %w", sha, err)
	}
	refs, err := r.references(ctx)
	_, used := refs[sha]
	if err != nil || used {
		// Restore also when we cannot tell: an unneeded object costs bytes,
		// a missing one breaks a deployment.
		if data == nil {
			return errors.Join(err, fmt.Errorf("module[%s]: referenced again after delete, and no intact copy to restore", sha))
		}
		if _, perr := r.obs.PutBytes(ctx, sha, data); perr != nil {
			return errors.Join(err, fmt.Errorf("module[%s]: restore after concurrent deploy: %w", sha, perr))
		}
		r.log.Info("registry: module restored, a deploy referenced it during collection", "sha256", sha)
		return err
	}
	r.log.Debug("registry: module collected", "sha256", sha, "size", len(data))
	if err := r.purgeDeleteMarker(ctx, sha); err != nil {
		return fmt.Errorf("module[%s]: %w", sha, err)
	}
	return nil
}

// purgeDeleteMarker removes the metadata message the Object Store leaves
// for a deleted object (about 400 bytes): without this every module ever
// collected would leave one for good, and each GC lists them all again.
// Only the marker and older messages of the name go (a purge up to its
// sequence): an upload of the same bytes that raced in after the delete
// wrote newer metadata, which stays.
func (r *Registry) purgeDeleteMarker(ctx context.Context, sha string) error {
	subj := "$O." + ModulesBucket(r.env) + ".M." + base64.URLEncoding.EncodeToString([]byte(sha))
	m, err := r.obsStream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read delete marker: %w", err)
	}
	var meta struct {
		Deleted bool `json:"deleted"`
	}
	if err := json.Unmarshal(m.Data, &meta); err != nil || !meta.Deleted {
		return nil // stored again meanwhile, or not ours to judge
	}
	if err := r.obsStream.Purge(ctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeSequence(m.Sequence+1)); err != nil {
		return fmt.Errorf("purge delete marker: %w", err)
	}
	return nil
}
