package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseMemoryLimit(t *testing.T) {
	good := map[string]memoryLimitSetting{
		"auto":       {Auto: true},
		"":           {Auto: true}, // a serveConfig built in code
		"off":        {Off: true},
		"1536MiB":    {Bytes: 1536 << 20},
		"2GiB":       {Bytes: 2 << 30},
		"1TiB":       {Bytes: 1 << 40},
		"65536KiB":   {Bytes: 64 << 20},
		"67108864":   {Bytes: 64 << 20},
		"67108864B":  {Bytes: 64 << 20},
		"0002GiB":    {Bytes: 2 << 30},
		"8388607TiB": {Bytes: 8388607 << 40},
	}
	for in, want := range good {
		if got, err := parseMemoryLimit(in); err != nil || got != want {
			t.Errorf("parseMemoryLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"bogus":                 "not a whole number",
		"Auto":                  "not a whole number",
		"1.5GiB":                "not a whole number",
		"-2GiB":                 "not a whole number",
		"+2GiB":                 "not a whole number",
		"2 GiB":                 "not a whole number",
		"2GB":                   "not a whole number",
		"2gib":                  "not a whole number",
		"2G":                    "not a whole number",
		"GiB":                   "not a whole number",
		"0x40000000":            "not a whole number",
		"8388608TiB":            "too large",
		"99999999999999999999":  "too large",
		"9223372036854775808B":  "too large",
		"2048":                  "below the least, 64MiB (a number without a suffix is bytes)",
		"0":                     "below the least",
		"63MiB":                 "below the least",
		"2GiB\n":                "not a whole number",
		"1GiBGiB":               "not a whole number",
		strings.Repeat("9", 99): "too large",
	}
	for in, want := range bad {
		_, err := parseMemoryLimit(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "--memory-limit: ") {
			t.Errorf("parseMemoryLimit(%q) = %v, want an error naming --memory-limit with %q", in, err, want)
		}
	}
}

func TestFormatByteSize(t *testing.T) {
	for n, want := range map[int64]string{
		512: "512B", 1 << 10: "1KiB", 1536 << 20: "1536MiB", 1 << 30: "1GiB",
		966367620: "921.6MiB", 3 << 40: "3TiB", math.MaxInt64: "8388608.0TiB", 1536 << 30: "1536GiB",
	} {
		if got := formatByteSize(n); got != want {
			t.Errorf("formatByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// fakeCgroups is a file system root with a /proc and cgroup files of a
// test's making.
type fakeCgroups struct {
	t     *testing.T
	paths cgroupPaths
}

func newFakeCgroups(t *testing.T) *fakeCgroups {
	dir := t.TempDir()
	return &fakeCgroups{t: t, paths: cgroupPaths{Proc: filepath.Join(dir, "proc"), Root: filepath.Join(dir, "root")}}
}

// proc writes /proc/self/<name>.
func (f *fakeCgroups) proc(name, content string) *fakeCgroups {
	return f.write(filepath.Join(f.paths.Proc, "self", name), content)
}

// file writes a file below the root, such as /sys/fs/cgroup/memory.max.
func (f *fakeCgroups) file(name, content string) *fakeCgroups {
	return f.write(filepath.Join(f.paths.Root, name), content)
}

func (f *fakeCgroups) write(path, content string) *fakeCgroups {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return f
}

// mountinfo lines of a cgroup v2 host and of a cgroup v1 (hybrid) host, as
// /proc/self/mountinfo shows them.
const (
	mountinfoV2 = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw
25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	mountinfoV1 = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
)

func TestCgroupMemoryLimit(t *testing.T) {
	abs := func(f *fakeCgroups, name string) string { return filepath.Join(f.paths.Root, name) }
	tests := []struct {
		name     string
		build    func(f *fakeCgroups)
		want     int64
		version  string
		file     string // below the root
		problems []string
	}{
		{
			name: "v2 in a cgroup namespace (Kubernetes, docker)",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max", "1073741824\n")
			},
			want: 1 << 30, version: "cgroup v2", file: "sys/fs/cgroup/memory.max",
		},
		{
			name: "v2 nested: a parent's limit is the smallest",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/kubepods/pod1/ctr\n").proc("mountinfo", mountinfoV2).
					file("sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n").
					file("sys/fs/cgroup/kubepods/pod1/memory.max", "536870912\n").
					file("sys/fs/cgroup/kubepods/memory.max", "2147483648\n")
			},
			want: 512 << 20, version: "cgroup v2", file: "sys/fs/cgroup/kubepods/pod1/memory.max",
		},
		{
			name: "v2 nested: the process's own limit is the smallest",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/system.slice/nylon.service\n").proc("mountinfo", mountinfoV2).
					file("sys/fs/cgroup/system.slice/nylon.service/memory.max", "1610612736").
					file("sys/fs/cgroup/system.slice/memory.max", "max")
			},
			want: 1536 << 20, version: "cgroup v2", file: "sys/fs/cgroup/system.slice/nylon.service/memory.max",
		},
		{
			name: "v2 max everywhere: no limit",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/user.slice/session-1.scope\n").proc("mountinfo", mountinfoV2).
					file("sys/fs/cgroup/user.slice/session-1.scope/memory.max", "max\n").
					file("sys/fs/cgroup/user.slice/memory.max", "max\n")
			},
		},
		{
			name: "v2 without a cgroup namespace: the mount's root is the process's cgroup",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/docker/abc\n").
					proc("mountinfo", "25 22 0:23 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n").
					file("sys/fs/cgroup/memory.max", "268435456\n")
			},
			want: 256 << 20, version: "cgroup v2", file: "sys/fs/cgroup/memory.max",
		},
		{
			name: "v2 mounted elsewhere, with a space in its path",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/a\n").
					proc("mountinfo", `25 22 0:23 / /mnt/cg\0402 rw - cgroup2 cgroup2 rw`+"\n").
					file("mnt/cg 2/a/memory.max", "134217728\n").
					file("sys/fs/cgroup/a/memory.max", "67108864\n") // not the mount: not read
			},
			want: 128 << 20, version: "cgroup v2", file: "mnt/cg 2/a/memory.max",
		},
		{
			name: "v2 without mountinfo: /sys/fs/cgroup",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/a\n").file("sys/fs/cgroup/a/memory.max", "134217728\n")
			},
			want: 128 << 20, version: "cgroup v2", file: "sys/fs/cgroup/a/memory.max",
		},
		{
			name: "v2 cgroup outside the mounted subtree",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/other\n").
					proc("mountinfo", "25 22 0:23 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n").
					file("sys/fs/cgroup/memory.max", "268435456\n")
			},
			problems: []string{"cgroup v2: the process's cgroup /other is outside the hierarchy mounted at /sys/fs/cgroup (cgroup /docker/abc): not read"},
		},
		{
			name: "v1 (hybrid), nested, the unlimited value at the leaf",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "9:name=systemd:/\n4:memory:/process_api/9c5e\n1:cpu:/\n0::/\n").proc("mountinfo", mountinfoV1).
					file("sys/fs/cgroup/memory/process_api/9c5e/memory.limit_in_bytes", "9223372036854771712\n").
					file("sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", "268435456\n").
					file("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
			},
			want: 256 << 20, version: "cgroup v1", file: "sys/fs/cgroup/memory/process_api/memory.limit_in_bytes",
		},
		{
			name: "v1 unlimited: no limit",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "4:memory:/x\n0::/\n").proc("mountinfo", mountinfoV1).
					file("sys/fs/cgroup/memory/x/memory.limit_in_bytes", "9223372036854771712\n").
					file("sys/fs/cgroup/memory/memory.limit_in_bytes", "18446744073709551615\n")
			},
		},
		{
			name: "v1 memory co-mounted with cpu, without mountinfo",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "3:cpu,memory:/x\n").file("sys/fs/cgroup/memory/x/memory.limit_in_bytes", "1073741824\n")
			},
			want: 1 << 30, version: "cgroup v1", file: "sys/fs/cgroup/memory/x/memory.limit_in_bytes",
		},
		{
			name: "v2 (hybrid: unified) and v1 both limited: the smaller",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "4:memory:/x\n0::/x\n").proc("mountinfo", mountinfoV1).
					file("sys/fs/cgroup/unified/x/memory.max", "1073741824\n").
					file("sys/fs/cgroup/memory/x/memory.limit_in_bytes", "805306368\n")
			},
			want: 768 << 20, version: "cgroup v1", file: "sys/fs/cgroup/memory/x/memory.limit_in_bytes",
		},
		{
			name:  "no /proc (another OS): nothing, no problem",
			build: func(f *fakeCgroups) {},
		},
		{
			name:  "no cgroup files: nothing, no problem",
			build: func(f *fakeCgroups) { f.proc("cgroup", "0::/a/b\n").proc("mountinfo", mountinfoV2) },
		},
		{
			name: "garbage in memory.max: a problem and no limit",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max", "lots\n")
			},
			problems: []string{`cgroup v2: ` + "ROOT" + `/sys/fs/cgroup/memory.max: "lots" is not a positive number of bytes or max`},
		},
		{
			name: "garbage at one level: the other levels still count",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/a\n").proc("mountinfo", mountinfoV2).
					file("sys/fs/cgroup/a/memory.max", "-1\n").
					file("sys/fs/cgroup/memory.max", "1073741824\n")
			},
			want: 1 << 30, version: "cgroup v2", file: "sys/fs/cgroup/memory.max",
			problems: []string{`"-1" is not a positive number of bytes or max`},
		},
		{
			name: "garbage in v1",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "4:memory:/\n").file("sys/fs/cgroup/memory/memory.limit_in_bytes", "0x40000000")
			},
			problems: []string{`cgroup v1: ` + "ROOT" + `/sys/fs/cgroup/memory/memory.limit_in_bytes: "0x40000000" is not a positive number of bytes`},
		},
		{
			name: "zero is no sane limit",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "0::/\n").file("sys/fs/cgroup/memory.max", "0\n")
			},
			problems: []string{`"0" is not a positive number of bytes or max`},
		},
		{
			name: "unreadable memory.max: a problem and no limit",
			build: func(f *fakeCgroups) {
				// A directory cannot be read as a file, also not by root,
				// whom a chmod would not stop.
				f.proc("cgroup", "0::/\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max/x", "")
			},
			problems: []string{"cgroup v2: read " + "ROOT" + "/sys/fs/cgroup/memory.max: is a directory"},
		},
		{
			name: "unreadable /proc/self/cgroup",
			build: func(f *fakeCgroups) {
				f.proc("cgroup/x", "")
			},
			problems: []string{"reading the process's cgroups: read " + "PROC" + "/self/cgroup: is a directory"},
		},
		{
			name: "garbage /proc files: nothing, no panic",
			build: func(f *fakeCgroups) {
				f.proc("cgroup", "\x00\xff::\n:\n::\n0:\n0::\n0::relative\n4:memory\n:memory:\n\n").
					proc("mountinfo", "\n - \n1 2 - cgroup2\n1 2 3 4 - cgroup2\n - - - -\n\\\\\\\n")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCgroups(t)
			tt.build(f)
			got, problems := f.paths.memoryLimit()
			want := cgroupMemoryLimit{Bytes: tt.want, Version: tt.version}
			if tt.file != "" {
				want.File = abs(f, tt.file)
			}
			if got != want {
				t.Errorf("memoryLimit() = %+v, want %+v", got, want)
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems %q, want %q", problems, tt.problems)
			}
			for i, p := range problems {
				w := strings.NewReplacer("ROOT", f.paths.Root, "PROC", f.paths.Proc).Replace(tt.problems[i])
				if !strings.Contains(p.Error(), w) {
					t.Errorf("problem %q, want it to hold %q", p, w)
				}
			}
		})
	}
}

// The choice of a limit, and what it logs: GOMEMLIMIT wins over auto and
// off, a size over GOMEMLIMIT; garbage in the cgroup files is a WARN and
// no limit.
func TestChooseMemoryLimit(t *testing.T) {
	limited := func(t *testing.T) cgroupPaths {
		f := newFakeCgroups(t)
		f.proc("cgroup", "0::/\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max", "1073741824\n")
		return f.paths
	}
	garbage := func(t *testing.T) cgroupPaths {
		f := newFakeCgroups(t)
		f.proc("cgroup", "0::/\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max", "1G\n")
		return f.paths
	}
	none := func(t *testing.T) cgroupPaths { return newFakeCgroups(t).paths }
	tiny := func(t *testing.T) cgroupPaths {
		f := newFakeCgroups(t)
		f.proc("cgroup", "0::/\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max", "33554432\n")
		return f.paths
	}
	huge := func(t *testing.T) cgroupPaths {
		f := newFakeCgroups(t)
		f.proc("cgroup", "0::/\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max", "9223372036854771712\n")
		return f.paths
	}
	tests := []struct {
		name       string
		setting    memoryLimitSetting
		gomemlimit string
		paths      func(t *testing.T) cgroupPaths
		want       int64
		attrs      string // the choice's attributes, as key=value
		logged     string // a WARN it logs
	}{
		{"auto: 90% of the cgroup's", memoryLimitSetting{Auto: true}, "", limited, 966367620,
			`source="cgroup v2" file=ROOT/sys/fs/cgroup/memory.max cgroup_limit=1GiB percent=90`, ""},
		{"auto: GOMEMLIMIT wins", memoryLimitSetting{Auto: true}, "700MiB", limited, 0, "source=GOMEMLIMIT gomemlimit=700MiB", ""},
		{"auto without a cgroup limit", memoryLimitSetting{Auto: true}, "", none, 0, `source="auto: no cgroup memory limit found"`, ""},
		{"auto on garbage: WARN, no limit", memoryLimitSetting{Auto: true}, "", garbage, 0, `source="auto: no cgroup memory limit found"`,
			`level=WARN msg="memory limit: cgroup memory limit not read" error="cgroup v2: ROOT/sys/fs/cgroup/memory.max: \"1G\" is not a positive number of bytes or max"`},
		{"auto in a 32MiB container: set, with a WARN", memoryLimitSetting{Auto: true}, "", tiny, 30198960,
			`source="cgroup v2" file=ROOT/sys/fs/cgroup/memory.max cgroup_limit=32MiB percent=90`,
			`level=WARN msg="memory limit: the cgroup's memory limit is below 64MiB, too small for serve: the Go collector will run almost constantly; give the container more memory" cgroup_limit=32MiB file=ROOT/sys/fs/cgroup/memory.max`},
		{"auto: a v2 limit from 2^62 up is none, as in v1", memoryLimitSetting{Auto: true}, "", huge, 0, `source="auto: no cgroup memory limit found"`, ""},
		{"off", memoryLimitSetting{Off: true}, "", limited, 0, `source="--memory-limit off"`, ""},
		{"off leaves GOMEMLIMIT", memoryLimitSetting{Off: true}, "700MiB", limited, 0, "source=GOMEMLIMIT gomemlimit=700MiB", ""},
		{"a size", memoryLimitSetting{Bytes: 512 << 20}, "", limited, 512 << 20, "source=--memory-limit", ""},
		{"a size over GOMEMLIMIT", memoryLimitSetting{Bytes: 512 << 20}, "700MiB", none, 512 << 20, "source=--memory-limit overrides_gomemlimit=700MiB", ""},
		{"a size above the cgroup's: WARN", memoryLimitSetting{Bytes: 2 << 30}, "", limited, 2 << 30, "source=--memory-limit",
			`level=WARN msg="memory limit: --memory-limit is above the cgroup's memory limit, which the kernel enforces first" memory_limit=2GiB cgroup_limit=1GiB file=ROOT/sys/fs/cgroup/memory.max`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := tt.paths(t)
			var logs strings.Builder
			log := slog.New(slog.NewTextHandler(&logs, nil))
			getenv := func(k string) string {
				if k == "GOMEMLIMIT" {
					return tt.gomemlimit
				}
				return ""
			}
			got := chooseMemoryLimit(log, tt.setting, getenv, paths)
			r := strings.NewReplacer("ROOT", paths.Root)
			if got.Bytes != tt.want {
				t.Errorf("Bytes = %d, want %d", got.Bytes, tt.want)
			}
			var attrs strings.Builder
			slog.New(slog.NewTextHandler(&attrs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == "time" || a.Key == "level" || a.Key == "msg" {
					return slog.Attr{}
				}
				return a
			}})).Info("", got.Attrs...)
			if a := strings.TrimSpace(attrs.String()); a != r.Replace(tt.attrs) {
				t.Errorf("attrs %s\nwant  %s", a, r.Replace(tt.attrs))
			}
			if tt.logged == "" && logs.Len() > 0 {
				t.Errorf("logged %q, want nothing", logs.String())
			}
			if tt.logged != "" && !strings.Contains(logs.String(), r.Replace(tt.logged)) {
				t.Errorf("logged %q, want %q", logs.String(), r.Replace(tt.logged))
			}
		})
	}
}

var gomemlimitMetric = regexp.MustCompile(`(?m)^go_gc_gomemlimit_bytes (\S+)$`)

// gomemlimitOf reads go_gc_gomemlimit_bytes from the /metrics of admin.
func gomemlimitOf(t *testing.T, admin string) int64 {
	t.Helper()
	code, body := httpGet(t, admin+"/metrics")
	m := gomemlimitMetric.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("GET /metrics = %d without go_gc_gomemlimit_bytes:\n%s", code, body)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("go_gc_gomemlimit_bytes %q: %v", m[1], err)
	}
	if f >= math.MaxInt64 { // no limit, 2^63-1, which a float64 rounds up
		return math.MaxInt64
	}
	return int64(f)
}

// A serve process sets the soft memory limit it is given, logs it, and
// /metrics shows it; with auto it leaves the GOMEMLIMIT it was started
// with.
func TestServeMemoryLimit(t *testing.T) {
	tests := []struct {
		name   string
		env    []string
		args   []string
		want   int64
		logged string
	}{
		{"flag", []string{"GOMEMLIMIT="}, []string{"--memory-limit", "1GiB"}, 1 << 30,
			"level=INFO msg=\"memory limit\" limit=1GiB bytes=1073741824 source=--memory-limit\n"},
		{"variable over GOMEMLIMIT", []string{"GOMEMLIMIT=300MiB", "NYLON_MEMORY_LIMIT=1536MiB"}, nil, 1536 << 20,
			"level=INFO msg=\"memory limit\" limit=1536MiB bytes=1610612736 source=--memory-limit overrides_gomemlimit=300MiB\n"},
		{"auto leaves GOMEMLIMIT", []string{"GOMEMLIMIT=300MiB", "NYLON_MEMORY_LIMIT="}, nil, 300 << 20,
			"level=INFO msg=\"memory limit\" limit=300MiB bytes=314572800 source=GOMEMLIMIT gomemlimit=300MiB\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProcessEnv(t, tt.env, serveArgs(t, append([]string{"--role", "gateway"}, tt.args...)...)...)
			admin := p.waitLine(t, adminLine)
			p.waitLine(t, readyLine)
			if got := gomemlimitOf(t, admin); got != tt.want {
				t.Errorf("go_gc_gomemlimit_bytes = %d, want %d", got, tt.want)
			}
			if !strings.Contains(p.stderr.String(), tt.logged) {
				t.Errorf("stderr lacks %q:\n%s", tt.logged, p.stderr.String())
			}
			p.signal(t, os.Interrupt)
			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Errorf("exit %d after SIGINT\nstderr:\n%s", code, p.stderr.String())
			}
		})
	}
}

// A bad --memory-limit, or NYLON_MEMORY_LIMIT, stops serve with exit code 2
// before anything starts.
func TestServeMemoryLimitBadValue(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--memory-limit", "bogus"}, `nylon serve: --memory-limit: "bogus": not a whole number with an optional B, KiB, MiB, GiB or TiB suffix; want auto, off, or a size like 1536MiB, 2GiB or a number of bytes`},
		{[]string{"NYLON_MEMORY_LIMIT=1.5GiB"}, nil, `nylon serve: --memory-limit: "1.5GiB": not a whole number`},
		{nil, []string{"--memory-limit", "2048"}, `nylon serve: --memory-limit: "2048" is 2048 bytes, below the least, 64MiB (a number without a suffix is bytes)`},
	} {
		t.Run(fmt.Sprint(tt.env, tt.args), func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			p := startProcessEnv(t, tt.env, append([]string{"serve", "--data", data, "--nats-listen", "127.0.0.1:-1",
				"--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, tt.args...)...)
			if code := p.wait(t, 30*time.Second); code != 2 {
				t.Fatalf("exit %d, want 2\nstderr:\n%s", code, p.stderr.String())
			}
			if !strings.Contains(p.stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, p.stderr.String())
			}
			if _, err := os.Stat(data); err == nil {
				t.Errorf("the data directory was created before the flag was refused")
			}
		})
	}
}

// Whatever the cgroup files hold, the discovery neither panics nor finds a
// limit that is not positive; the seeds run with every go test.
func FuzzCgroupMemoryLimit(f *testing.F) {
	f.Add("0::/a\n", mountinfoV2, "max\n", "9223372036854771712\n")
	f.Add("4:memory:/a\n0::/\n", mountinfoV1, "1073741824", "268435456")
	f.Add("0::/../../a\n4:memory:/..\n", "1 2 3 /x/../.. /sys/fs/cgroup - cgroup2 c rw\n", "-5", "18446744073709551616")
	f.Add("\x00:\xff:/\n", "\\\\\\ - cgroup memory memory\n", "\n", "")
	f.Fuzz(func(t *testing.T, procCgroup, mountinfo, v2, v1 string) {
		c := newFakeCgroups(t)
		c.proc("cgroup", procCgroup).proc("mountinfo", mountinfo).
			file("sys/fs/cgroup/a/memory.max", v2).file("sys/fs/cgroup/memory.max", v2).
			file("sys/fs/cgroup/memory/a/memory.limit_in_bytes", v1).file("sys/fs/cgroup/memory/memory.limit_in_bytes", v1)
		got, _ := c.paths.memoryLimit()
		if got.Bytes < 0 || got.Bytes > 0 && got.File == "" {
			t.Fatalf("memoryLimit() = %+v", got)
		}
	})
}
