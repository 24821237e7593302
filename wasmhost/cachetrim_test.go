package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// These tests trim a cache directory of their own (t.TempDir()), never the
// shared one of newHost.

// newCacheHost starts a Host whose compilation cache is dir, bounded to
// maxBytes, with a log capture; it is closed at the end of the test.
func newCacheHost(t *testing.T, dir string, maxBytes int64) (*wasmhost.Host, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := wasmhost.New(context.Background(), wasmhost.Config{}.
		WithCompilationCacheDir(dir).
		WithCompilationCacheMaxBytes(maxBytes).
		WithLogger(logger))
	if err != nil {
		t.Fatalf("new host (cache %s, max %d bytes): %v", dir, maxBytes, err)
	}
	t.Cleanup(func() { closeHost(t, h) })
	return h, logs
}

func closeHost(t *testing.T, h *wasmhost.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Errorf("close host: %v", err)
	}
}

// helloVariant is helloModule with a custom section appended, as a soak
// deploying new code does: the same machine code, but a module of its own
// to wazero (its cache key hashes the bytes), hence its own cache file.
// A custom section is id 0, its size, then the name (length-prefixed) and
// the payload.
func helloVariant(i int) []byte {
	body := name(nil, "nylon.test.variant")
	body = append(body, fmt.Sprintf("variant-%d", i)...)
	return append(append(helloModule(), 0), vecBytes(nil, body)...)
}

// cacheFiles returns the size of every regular file under dir by path.
func cacheFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files[path] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return files
}

func sum(files map[string]int64) int64 {
	var n int64
	for _, s := range files {
		n += s
	}
	return n
}

// callHello checks that m (helloModule or a variant) answers End with
// x-hello: world.
func callHello(t *testing.T, m *wasmhost.Module) {
	t.Helper()
	res, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if res.Action != protocol.ActionEnd || len(res.Ops) != 1 || res.Ops[0].Key != "x-hello" || string(res.Ops[0].Value) != "world" {
		t.Fatalf("result %+v, want End with x-hello: world", res)
	}
}

// Compiling more distinct modules than the bound holds leaves the directory
// within it, holding the newest entries.
func TestCompilationCacheStaysWithinMaxBytes(t *testing.T) {
	// The size of one entry, measured in an unbounded cache.
	probeDir := t.TempDir()
	probe, _ := newCacheHost(t, probeDir, 0)
	compile(t, probe, "probe", helloVariant(-1), wasmhost.Limits{})
	probeFiles := cacheFiles(t, probeDir)
	if len(probeFiles) != 1 {
		t.Fatalf("one compile wrote %d cache files, want 1: %v", len(probeFiles), probeFiles)
	}
	entry := sum(probeFiles)

	const n, keep = 8, 4
	// Room for 4.5 entries: a fifth is over it, and a trim to 90% of it
	// (4.05 entries) deletes one.
	maxBytes := keep*entry + entry/2
	dir := t.TempDir()
	h, logs := newCacheHost(t, dir, maxBytes)
	base := time.Now().Add(-time.Hour)
	var order []string // each compile's file, oldest first
	seen := map[string]bool{}
	for i := range n {
		compile(t, h, fmt.Sprintf("fn-%d", i), helloVariant(i), wasmhost.Limits{})
		files := cacheFiles(t, dir)
		var added []string
		for p := range files {
			if !seen[p] {
				added = append(added, p)
			}
		}
		if len(added) != 1 {
			t.Fatalf("compile %d: %d new cache files %v, want 1 (the variants must not share an entry)", i, len(added), added)
		}
		seen[added[0]] = true
		order = append(order, added[0])
		if total := sum(files); total > maxBytes {
			t.Fatalf("after compile %d: cache holds %d bytes in %d files, bound %d", i, total, len(files), maxBytes)
		}
		// File times are coarse (a jiffy): space the entries an unambiguous
		// second apart, all older than the next compile's.
		at := base.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(added[0], at, at); err != nil {
			t.Fatal(err)
		}
	}
	got := slices.Sorted(maps.Keys(cacheFiles(t, dir)))
	want := slices.Sorted(slices.Values(order[n-keep:]))
	if !slices.Equal(got, want) {
		t.Errorf("cache holds %v, want the newest %d entries %v", got, keep, want)
	}
	// A trim for each compile past the fourth, one file each.
	recs := logs.matching(t, "compilation cache trimmed")
	if len(recs) != n-keep {
		t.Fatalf("%d trim records, want %d: %v", len(recs), n-keep, recs)
	}
	if r := recs[0]; r["files"] != 1.0 || r["bytes_freed"] != float64(entry) || r["bytes_kept"] != float64(keep*entry) {
		t.Errorf("trim record %v, want files 1, bytes_freed %d, bytes_kept %d", r, entry, keep*entry)
	}
}

// New trims a directory left over the bound (a restart after a long run,
// or a lowered bound): oldest first, sparing a *.tmp wazero may be writing,
// deleting one a crash left behind, never following a symbolic link.
func TestNewTrimsCompilationCache(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "wazero-old-version")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	write := func(path string, size int, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// Ten entries of 1000 bytes, entry-0 the oldest.
	for i := range 10 {
		write(filepath.Join(sub, fmt.Sprintf("entry-%d", i)), 1000, now.Add(time.Duration(i-20)*time.Hour))
	}
	// Younger than 10 minutes: wazero may still be writing it.
	fresh := filepath.Join(sub, "x.1234.tmp")
	write(fresh, 1000, now.Add(-time.Minute))
	stale := filepath.Join(sub, "y.5678.tmp")
	write(stale, 1000, now.Add(-time.Hour))
	// A link to a big file elsewhere: neither followed nor counted.
	outside := filepath.Join(t.TempDir(), "big")
	write(outside, 1<<20, now.Add(-100*time.Hour))
	link := filepath.Join(dir, "link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}

	// 12000 bytes, bound 6000: the stale tmp goes, then entries 0 to 5,
	// leaving 5000 (at most 90% of 6000) with the fresh tmp.
	_, logs := newCacheHost(t, dir, 6000)
	got := slices.Sorted(maps.Keys(cacheFiles(t, dir)))
	var want []string
	for i := 6; i < 10; i++ {
		want = append(want, filepath.Join(sub, fmt.Sprintf("entry-%d", i)))
	}
	want = append(want, fresh)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after New the cache holds\n%v\nwant\n%v", got, want)
	}
	for _, p := range []string{outside, link} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v; a link and its target must be left alone", p, err)
		}
	}
	recs := logs.matching(t, "compilation cache trimmed")
	if len(recs) != 1 {
		t.Fatalf("%d trim records, want 1: %v", len(recs), recs)
	}
	if r := recs[0]; r["files"] != 7.0 || r["bytes_freed"] != 7000.0 || r["bytes_kept"] != 5000.0 || r["level"] != "INFO" {
		t.Errorf("trim record %v, want INFO, files 7, bytes_freed 7000, bytes_kept 5000", r)
	}
}

// Entries read since they were written (a cache hit moves the access time)
// are kept over entries written later and never read: a module a node loads
// at every start outlives last month's builds.
func TestTrimDeletesLeastRecentlyUsedFirst(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "wazero-some-version")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	write := func(name string, atime, mtime time.Time) string {
		t.Helper()
		path := filepath.Join(sub, name)
		if err := os.WriteFile(path, make([]byte, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, atime, mtime); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var hot []string
	for i := range 5 { // written 100 hours ago, read in the last hours
		hot = append(hot, write(fmt.Sprint("hot-", i), now.Add(time.Duration(-i-1)*time.Hour), now.Add(-100*time.Hour)))
	}
	for i := range 5 { // written 50 hours ago, never read since
		at := now.Add(time.Duration(-50-i) * time.Hour)
		write(fmt.Sprint("cold-", i), at, at)
	}
	// 10000 bytes, bound 6000: down to 5400, so the five cold entries go.
	newCacheHost(t, dir, 6000)
	got := slices.Sorted(maps.Keys(cacheFiles(t, dir)))
	if !slices.Equal(got, hot) {
		t.Errorf("after the trim the cache holds\n%v\nwant the entries read recently\n%v", got, hot)
	}
}

// A module whose cache file was trimmed keeps running (its machine code is
// in memory), and compiles again (a cache miss) in the next host.
func TestTrimmedModuleCompilesAgain(t *testing.T) {
	dir := t.TempDir()
	// A bound smaller than any entry: the trim after the compile deletes
	// the file the compile wrote.
	h, _ := newCacheHost(t, dir, 1)
	m := compile(t, h, "hello", helloVariant(0), wasmhost.Limits{})
	if files := cacheFiles(t, dir); len(files) != 0 {
		t.Fatalf("cache bounded to 1 byte holds %v after a compile, want nothing", files)
	}
	callHello(t, m)
	closeHost(t, h)

	h2, _ := newCacheHost(t, dir, 0)
	m2 := compile(t, h2, "hello", helloVariant(0), wasmhost.Limits{})
	callHello(t, m2)
	if files := cacheFiles(t, dir); len(files) != 1 {
		t.Errorf("cache holds %v after compiling the trimmed module again, want its entry back", files)
	}
}

// A negative bound is refused by New.
func TestCompilationCacheMaxBytesNegative(t *testing.T) {
	_, err := wasmhost.New(context.Background(), wasmhost.Config{}.
		WithCompilationCacheDir(t.TempDir()).WithCompilationCacheMaxBytes(-1))
	if !errors.Is(err, wasmhost.ErrInvalidConfig) || !strings.Contains(err.Error(), "compilation_cache_max_bytes -1") {
		t.Fatalf("New with a bound of -1: %v, want an invalid config error", err)
	}
}

// Two hosts on one cache directory (two processes sharing a data
// directory): one trims every entry right after its compiles, the other
// hits the cache for the same modules at the same time. A file deleted
// between a lookup and its read, or by the other host's trim first, never
// fails a compile: the reader has it open or compiles again.
func TestConcurrentTrimsAndCacheHitsOnOneDirectory(t *testing.T) {
	dir := t.TempDir()
	trimmer, _ := newCacheHost(t, dir, 1)
	reader, _ := newCacheHost(t, dir, 0)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for g := range 4 {
		h := trimmer
		if g%2 == 1 {
			h = reader
		}
		wg.Go(func() {
			ctx := context.Background()
			for i := range 15 {
				m, err := h.Compile(ctx, "hello", helloVariant(i%3), wasmhost.Limits{})
				if err != nil {
					errs <- fmt.Errorf("host %d, compile %d: %w", g%2, i, err)
					return
				}
				res, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
				if err != nil || res.Action != protocol.ActionEnd {
					errs <- fmt.Errorf("host %d, call %d: %+v, %v", g%2, i, res, err)
				}
				// Closed, so that the next compile of the module looks in
				// the directory, not in the runtime's memory.
				if err := m.Close(ctx); err != nil {
					errs <- fmt.Errorf("host %d, close %d: %w", g%2, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Compiles of the same bytes at once on one host, with the machine code in
// the file cache and not in the runtime's memory (a restarted node, two
// uploads of one module), all succeed and run. wazero v1.12 publishes a
// module it reads from the file cache to its in-memory cache before
// finishing it (its entry preambles): a second compile of the same bytes
// could take it half made and instantiate it, a data race (-race reports
// it) and at worst an index-out-of-range panic in the process.
func TestConcurrentCompilesOfOneCachedModule(t *testing.T) {
	dir := t.TempDir()
	warm, _ := newCacheHost(t, dir, 0)
	ctx := context.Background()
	m, err := warm.Compile(ctx, "hello", helloModule(), wasmhost.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		h, _ := newCacheHost(t, dir, 0) // a fresh runtime: nothing in memory
		const n = 6
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				m, err := h.Compile(ctx, fmt.Sprintf("hello-%d", i), helloModule(), wasmhost.Limits{})
				if err != nil {
					errs <- fmt.Errorf("round %d, compile %d: %w", round, i, err)
					return
				}
				defer m.Close(ctx)
				res, err := m.Call(ctx, protocol.PhaseRequestFilter, 0, nil, protocol.RequestID{})
				if err != nil || res.Action != protocol.ActionEnd {
					errs <- fmt.Errorf("round %d, call %d: %+v, %v", round, i, res, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
