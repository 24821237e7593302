package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// --memory-limit: Go's soft memory limit (runtime/debug.SetMemoryLimit,
// GOMEMLIMIT). A node's guests keep their linear memories on the Go heap,
// next to JetStream's and the caches' memory, so a node in a container
// grows until the kernel OOM-kills it unless the collector knows the
// container's limit: with a soft limit it collects harder as the heap
// nears it, which is what the Go GC guide ("Memory limit") and
// KimMachineGun/automemlimit recommend, at about 90 % of the cgroup's limit.

const (
	memoryLimitAuto = "auto"
	memoryLimitOff  = "off"

	// memoryLimitPercent is the part of the cgroup's limit auto gives Go.
	// The rest is the headroom for memory the collector does not manage:
	// wazero's machine code (mapped, outside the heap), thread stacks, and
	// the heap overshooting the limit between collections.
	memoryLimitPercent = 90

	// minMemoryLimit is the smallest size --memory-limit takes. Below it
	// the collector would run all the time; a plain number is bytes, so
	// "2048" meant as MiB would otherwise be a 2 KiB limit.
	minMemoryLimit = 64 << 20

	// cgroupV1Unlimited: memory.limit_in_bytes of a cgroup v1 without a
	// limit is the largest page count in bytes, 2^63 minus a page
	// (9223372036854771712 with 4 KiB pages); anything from 2^62 up is no
	// limit on any real machine.
	cgroupV1Unlimited = 1 << 62
)

// memoryLimitSetting is a parsed --memory-limit: auto, off, or Bytes.
type memoryLimitSetting struct {
	Auto  bool
	Off   bool
	Bytes int64
}

// parseMemoryLimit parses --memory-limit: auto, off, or a size as
// GOMEMLIMIT writes it: a whole number of bytes with an optional B, KiB,
// MiB, GiB or TiB suffix, at least minMemoryLimit. Empty is auto, so that
// a serveConfig built in code has the flag's default.
func parseMemoryLimit(s string) (memoryLimitSetting, error) {
	switch s {
	case "", memoryLimitAuto:
		return memoryLimitSetting{Auto: true}, nil
	case memoryLimitOff:
		return memoryLimitSetting{Off: true}, nil
	}
	n, err := parseByteSize(s)
	if err != nil {
		return memoryLimitSetting{}, fmt.Errorf("--memory-limit: %q: %w; want auto, off, or a size like 1536MiB, 2GiB or a number of bytes", s, err)
	}
	if n < minMemoryLimit {
		return memoryLimitSetting{}, fmt.Errorf("--memory-limit: %q is %d bytes, below the least, 64MiB (a number without a suffix is bytes)", s, n)
	}
	return memoryLimitSetting{Bytes: n}, nil
}

// byteUnits are the suffixes of parseByteSize, the ones GOMEMLIMIT takes.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseByteSize parses a whole number of bytes with an optional unit
// suffix, strictly: no sign, no fraction, no space, no decimal (MB) units.
func parseByteSize(s string) (int64, error) {
	digits, shift := s, uint(0)
	for _, u := range byteUnits {
		if d, ok := strings.CutSuffix(s, u.suffix); ok {
			digits, shift = d, u.shift
			break
		}
	}
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, errors.New("not a whole number with an optional B, KiB, MiB, GiB or TiB suffix")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, errors.New("too large")
	}
	return n << shift, nil
}

// formatByteSize writes n as --memory-limit and GOMEMLIMIT take it (the
// CLI's formatBytes is decimal): exactly in the largest unit that divides
// it (1GiB, 1536MiB), else rounded in the largest unit below it (921.6MiB).
func formatByteSize(n int64) string {
	for _, u := range byteUnits {
		if u.shift > 0 && n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	for _, u := range byteUnits {
		if u.shift > 0 && n >= 1<<u.shift {
			return strconv.FormatFloat(float64(n)/float64(int64(1)<<u.shift), 'f', 1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// cgroupPaths are where the cgroup memory limit is looked for. The host's
// are hostCgroupPaths(); tests point them at a fake tree.
type cgroupPaths struct {
	// Proc is the proc file system: <Proc>/self/cgroup names the
	// process's cgroups, <Proc>/self/mountinfo where their hierarchies
	// are mounted.
	Proc string
	// Root is prefixed to the mount points mountinfo gives (and to the
	// default ones, /sys/fs/cgroup and /sys/fs/cgroup/memory, used when
	// mountinfo names none).
	Root string
}

func hostCgroupPaths() cgroupPaths { return cgroupPaths{Proc: "/proc", Root: "/"} }

// cgroupMemoryLimit is the smallest memory limit of the process's cgroups
// and of their ancestors, and where it was read. Bytes 0: none found.
type cgroupMemoryLimit struct {
	Bytes   int64
	Version string // "cgroup v2" or "cgroup v1"
	File    string // the memory.max or memory.limit_in_bytes it came from
}

// cgroupMount is a cgroup hierarchy's mount: its mount point and the
// cgroup mounted there (its root, "/" unless the mount is of a subtree, as
// in a container without a cgroup namespace).
type cgroupMount struct {
	point, root string
}

// memoryLimit finds the smallest memory limit of the cgroups (v2 and v1)
// the process is in, each walked up to the hierarchy's mount as a parent's
// limit bounds its children. A file that is not there is no limit; one
// that cannot be read or does not parse is a problem, returned for the
// caller to report, and no limit. It never fails: no cgroups (another
// OS, a bare /proc) is no limit.
func (p cgroupPaths) memoryLimit() (cgroupMemoryLimit, []error) {
	var problems []error
	data, err := os.ReadFile(filepath.Join(p.Proc, "self", "cgroup"))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, fmt.Errorf("reading the process's cgroups: %w", err))
		}
		return cgroupMemoryLimit{}, problems
	}
	v2Path, v1Path := parseProcCgroup(data)
	v2Mount, v1Mount := p.cgroupMounts()

	var best cgroupMemoryLimit
	consider := func(version, file string, parse func(string) (int64, error)) {
		raw, err := os.ReadFile(file)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return
		case err != nil:
			problems = append(problems, fmt.Errorf("%s: %w", version, err))
			return
		}
		n, err := parse(strings.TrimSpace(string(raw)))
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %s: %w", version, file, err))
			return
		}
		if n > 0 && (best.Bytes == 0 || n < best.Bytes) {
			best = cgroupMemoryLimit{Bytes: n, Version: version, File: file}
		}
	}
	walk := func(version, cgroup string, m cgroupMount, name string, parse func(string) (int64, error)) {
		rel, ok := cgroupUnder(cgroup, m.root)
		if !ok {
			problems = append(problems, fmt.Errorf("%s: the process's cgroup %s is outside the hierarchy mounted at %s (cgroup %s): not read", version, cgroup, m.point, m.root))
			return
		}
		for {
			consider(version, filepath.Join(p.Root, m.point, filepath.FromSlash(rel), name), parse)
			if rel == "/" {
				return
			}
			rel = path.Dir(rel)
		}
	}
	if v2Path != "" {
		walk("cgroup v2", v2Path, v2Mount, "memory.max", parseCgroupV2Limit)
	}
	if v1Path != "" {
		walk("cgroup v1", v1Path, v1Mount, "memory.limit_in_bytes", parseCgroupV1Limit)
	}
	return best, problems
}

// parseProcCgroup returns the process's cgroup v2 path (the "0::" line)
// and its cgroup v1 memory controller's path, "" for those it lacks.
// Lines are hierarchy-ID:controller-list:path (man 7 cgroups).
func parseProcCgroup(data []byte) (v2, v1Memory string) {
	for line := range strings.Lines(string(data)) {
		id, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(p, "/") {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			v2 = p
		case hasOption(controllers, "memory"):
			v1Memory = p
		}
	}
	return v2, v1Memory
}

// cgroupMounts returns where the cgroup v2 hierarchy and cgroup v1's
// memory controller are mounted, from <Proc>/self/mountinfo; without it, or
// without such a mount in it, the usual places, /sys/fs/cgroup and
// /sys/fs/cgroup/memory.
func (p cgroupPaths) cgroupMounts() (v2, v1Memory cgroupMount) {
	v2 = cgroupMount{point: "/sys/fs/cgroup", root: "/"}
	v1Memory = cgroupMount{point: "/sys/fs/cgroup/memory", root: "/"}
	data, err := os.ReadFile(filepath.Join(p.Proc, "self", "mountinfo"))
	if err != nil {
		return v2, v1Memory
	}
	var found2, found1 bool
	for line := range strings.Lines(string(data)) {
		// 36 35 98:0 /root /mount/point rw,noatime master:1 - cgroup2 cgroup2 rw
		// (man 5 proc): the optional fields end at "-", then the file
		// system type, the source and the super options.
		left, right, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " - ")
		if !ok {
			continue
		}
		f, r := strings.Fields(left), strings.Fields(right)
		if len(f) < 5 || len(r) < 1 {
			continue
		}
		m := cgroupMount{root: unescapeMountinfo(f[3]), point: unescapeMountinfo(f[4])}
		switch {
		case r[0] == "cgroup2" && !found2:
			v2, found2 = m, true
		case r[0] == "cgroup" && !found1 && len(r) >= 3 && hasOption(r[2], "memory"):
			v1Memory, found1 = m, true
		}
	}
	return v2, v1Memory
}

// cgroupUnder returns cgroup's path relative to the mount's root ("/" for
// the root itself), false when the cgroup is not below it.
func cgroupUnder(cgroup, root string) (string, bool) {
	cgroup, root = path.Clean(cgroup), path.Clean(root)
	if root == "/" {
		return cgroup, true
	}
	if cgroup == root {
		return "/", true
	}
	if rel, ok := strings.CutPrefix(cgroup, root+"/"); ok {
		return "/" + rel, true
	}
	return "", false
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasOption(list, opt string) bool {
	for o := range strings.SplitSeq(list, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// parseCgroupV2Limit parses memory.max: a number of bytes, or "max" for
// none (0). Numbers from cgroupV1Unlimited up are none too, as in v1: no
// machine has that memory, and a soft limit of 90 % of one is no limit.
func parseCgroupV2Limit(s string) (int64, error) {
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive number of bytes or max", s)
	}
	if n >= cgroupV1Unlimited {
		return 0, nil
	}
	return n, nil
}

// parseCgroupV1Limit parses memory.limit_in_bytes: a number of bytes, from
// cgroupV1Unlimited up none (0).
func parseCgroupV1Limit(s string) (int64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a positive number of bytes", s)
	}
	if n >= cgroupV1Unlimited {
		return 0, nil
	}
	return int64(n), nil
}

// memoryLimitChoice is the limit serve gives the runtime and why.
type memoryLimitChoice struct {
	// Bytes is the limit for debug.SetMemoryLimit; 0 leaves the runtime
	// as it is (GOMEMLIMIT's value, or no limit).
	Bytes int64
	// Attrs say where it came from, for the log line.
	Attrs []any
}

// chooseMemoryLimit decides the memory limit of setting: a size is used as
// is; auto defers to the GOMEMLIMIT variable when set (the runtime has
// applied it already), else takes memoryLimitPercent of the cgroup's
// limit; off leaves the runtime alone. Problems reading the cgroup files
// are logged as WARN: they leave the limit unset, never stop serve.
func chooseMemoryLimit(log *slog.Logger, setting memoryLimitSetting, getenv func(string) string, paths cgroupPaths) memoryLimitChoice {
	goMemLimit := getenv("GOMEMLIMIT")
	switch {
	case setting.Bytes > 0:
		attrs := []any{"source", "--memory-limit"}
		if goMemLimit != "" {
			attrs = append(attrs, "overrides_gomemlimit", goMemLimit)
		}
		// A limit above the container's is no protection: the kernel
		// kills the process before the collector reacts.
		if cg, _ := paths.memoryLimit(); cg.Bytes > 0 && setting.Bytes > cg.Bytes {
			log.Warn("memory limit: --memory-limit is above the cgroup's memory limit, which the kernel enforces first",
				"memory_limit", formatByteSize(setting.Bytes), "cgroup_limit", formatByteSize(cg.Bytes), "file", cg.File)
		}
		return memoryLimitChoice{Bytes: setting.Bytes, Attrs: attrs}
	case goMemLimit != "":
		return memoryLimitChoice{Attrs: []any{"source", "GOMEMLIMIT", "gomemlimit", goMemLimit}}
	case setting.Off:
		return memoryLimitChoice{Attrs: []any{"source", "--memory-limit off"}}
	}
	cg, problems := paths.memoryLimit()
	for _, err := range problems {
		log.Warn("memory limit: cgroup memory limit not read", "error", err)
	}
	if cg.Bytes == 0 {
		return memoryLimitChoice{Attrs: []any{"source", "auto: no cgroup memory limit found"}}
	}
	if cg.Bytes < minMemoryLimit {
		// Set anyway (the kernel's limit is what it is), but said: near
		// it the collector runs almost all the time.
		log.Warn("memory limit: the cgroup's memory limit is below 64MiB, too small for serve: the Go collector will run almost constantly; give the container more memory",
			"cgroup_limit", formatByteSize(cg.Bytes), "file", cg.File)
	}
	return memoryLimitChoice{
		Bytes: cg.Bytes / 100 * memoryLimitPercent,
		Attrs: []any{"source", cg.Version, "file", cg.File, "cgroup_limit", formatByteSize(cg.Bytes), "percent", memoryLimitPercent},
	}
}

// applyMemoryLimit sets the memory limit chooseMemoryLimit picks and logs
// it, with the limit the runtime ends up with (go_gc_gomemlimit_bytes on
// /metrics shows the same).
func applyMemoryLimit(log *slog.Logger, setting memoryLimitSetting, getenv func(string) string, paths cgroupPaths) {
	c := chooseMemoryLimit(log, setting, getenv, paths)
	if c.Bytes > 0 {
		debug.SetMemoryLimit(c.Bytes)
	}
	limit := debug.SetMemoryLimit(-1) // -1 reads it
	if limit == math.MaxInt64 {
		log.Info("memory limit: none", c.Attrs...)
		return
	}
	log.Info("memory limit", append([]any{"limit", formatByteSize(limit), "bytes", limit}, c.Attrs...)...)
}
