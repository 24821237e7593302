package wasmhost

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Trimming the on-disk compilation cache (Config.WithCompilationCacheMaxBytes).
// wazero v1.12 neither evicts entries nor says which file holds which module
// (files are named by an internal key), so the host bounds the directory as
// a whole: least recently used first, as far as the file system tells. A
// cache hit reads the entry, which moves its access time on Linux's default
// relatime mounts (at most once a day, enough to tell the modules a node
// serves from last month's builds); on noatime mounts, or where the access
// time is not read, it is least recently written first.

const (
	// cacheTmpMaxAge protects the *.tmp files wazero writes an entry to
	// before renaming it into place: one younger than this may be in
	// progress; an older one is what a crash left behind.
	cacheTmpMaxAge = 10 * time.Minute
)

// cacheFile is one regular file under the cache directory.
type cacheFile struct {
	path  string
	size  int64
	mtime time.Time
	used  time.Time // the later of mtime and the access time
	tmp   bool
}

// trimCache deletes the *.tmp files under the cache directory older than
// cacheTmpMaxAge and then, if the files still sum to more than the bound,
// the others, least recently used first, down to 90% of it (so the next
// few new modules do not each trigger another trim). It never fails: what
// it cannot read or delete is logged and left. Trims are serialized, so
// concurrent compiles do not walk and delete at the same time.
func (h *Host) trimCache(ctx context.Context) {
	if h.cfg.cacheDir == "" || h.cfg.cacheMax == 0 {
		return
	}
	h.trimMu.Lock()
	defer h.trimMu.Unlock()

	files, total, walkErr := scanCache(h.cfg.cacheDir)
	if walkErr != nil {
		h.logger.WarnContext(ctx, "compilation cache: cannot read all of it; trimming what was read",
			"dir", h.cfg.cacheDir, "error", walkErr)
	}
	now := time.Now()
	target := h.cfg.cacheMax - h.cfg.cacheMax/10
	// Least recently used first; the path breaks ties so that the order
	// is stable.
	slices.SortFunc(files, func(a, b cacheFile) int {
		if c := a.used.Compare(b.used); c != 0 {
			return c
		}
		return cmp.Compare(a.path, b.path)
	})
	var (
		deleted, failed int
		freed           int64
		firstErr        error
	)
	remove := func(f cacheFile) {
		err := os.Remove(f.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		// Gone, whether we or someone else removed it.
		total -= f.size
		if err == nil {
			deleted++
			freed += f.size
		}
	}
	// Crash leftovers first: garbage whatever the bound, and deleting them
	// may spare an entry.
	for _, f := range files {
		if f.tmp && now.Sub(f.mtime) >= cacheTmpMaxAge {
			remove(f)
		}
	}
	if total > h.cfg.cacheMax {
		for _, f := range files {
			if total <= target {
				break
			}
			if !f.tmp { // a young one may be being written
				remove(f)
			}
		}
	}
	if failed > 0 {
		h.logger.WarnContext(ctx, "compilation cache: cannot delete files",
			"dir", h.cfg.cacheDir, "failed", failed, "error", firstErr)
	}
	if deleted > 0 {
		h.logger.InfoContext(ctx, "compilation cache trimmed",
			"dir", h.cfg.cacheDir, "files", deleted, "bytes_freed", freed, "bytes_kept", total,
			"max_bytes", h.cfg.cacheMax)
	}
}

// scanCache lists the regular files under dir, without following symbolic
// links, and sums their sizes. Entries it cannot read are skipped; the
// error reports the first of them.
func scanCache(dir string) ([]cacheFile, int64, error) {
	var (
		files    []cacheFile
		total    int64
		firstErr error
	)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if firstErr == nil && !errors.Is(err, fs.ErrNotExist) {
				firstErr = err
			}
			return nil // skip the entry (and a directory's contents), go on
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if firstErr == nil && !errors.Is(err, fs.ErrNotExist) {
				firstErr = err
			}
			return nil
		}
		used := info.ModTime()
		if at := accessTime(info); at.After(used) {
			used = at
		}
		files = append(files, cacheFile{
			path: path, size: info.Size(), mtime: info.ModTime(), used: used,
			tmp: strings.HasSuffix(d.Name(), ".tmp"),
		})
		total += info.Size()
		return nil
	})
	if err == nil {
		err = firstErr
	}
	return files, total, err
}
