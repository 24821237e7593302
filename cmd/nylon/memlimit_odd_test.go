package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Odd but possible cgroup files: whitespace and CRLF around the value, a
// cgroup name with spaces (raw in /proc/self/cgroup, escaped in
// mountinfo), a backslash in the mount point, numbers past int64 and a
// negative v1 value. None stops serve; what does not parse is a problem
// and no limit.
func TestCgroupMemoryLimitOddFiles(t *testing.T) {
	tests := []struct {
		name    string
		build   func(f *fakeCgroups)
		want    int64
		file    string // below the root
		problem string
	}{
		{"whitespace and CRLF", func(f *fakeCgroups) {
			f.proc("cgroup", "0::/\r\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max", " \t268435456 \r\n\n")
		}, 256 << 20, "sys/fs/cgroup/memory.max", ""},
		{"max with CRLF", func(f *fakeCgroups) {
			f.proc("cgroup", "0::/\n").proc("mountinfo", mountinfoV2).file("sys/fs/cgroup/memory.max", "max\r\n")
		}, 0, "", ""},
		{"a cgroup with spaces in its name", func(f *fakeCgroups) {
			f.proc("cgroup", "0::/system.slice/my svc.service\n").proc("mountinfo", mountinfoV2).
				file("sys/fs/cgroup/system.slice/my svc.service/memory.max", "134217728\n")
		}, 128 << 20, "sys/fs/cgroup/system.slice/my svc.service/memory.max", ""},
		{"a backslash in the mount point", func(f *fakeCgroups) {
			f.proc("cgroup", "0::/a\n").proc("mountinfo", `25 22 0:23 / /mnt/c\134g rw - cgroup2 cgroup2 rw`+"\n").
				file(`mnt/c\g/a/memory.max`, "134217728\n")
		}, 128 << 20, `mnt/c\g/a/memory.max`, ""},
		{"v2 past int64", func(f *fakeCgroups) {
			f.proc("cgroup", "0::/\n").file("sys/fs/cgroup/memory.max", "99999999999999999999\n")
		}, 0, "", `"99999999999999999999" is not a positive number of bytes or max`},
		{"v1 negative", func(f *fakeCgroups) {
			f.proc("cgroup", "4:memory:/\n").file("sys/fs/cgroup/memory/memory.limit_in_bytes", "-1\n")
		}, 0, "", `"-1" is not a positive number of bytes`},
		{"v1 past uint64", func(f *fakeCgroups) {
			f.proc("cgroup", "4:memory:/\n").file("sys/fs/cgroup/memory/memory.limit_in_bytes", "99999999999999999999999\n")
		}, 0, "", `is not a positive number of bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCgroups(t)
			tt.build(f)
			got, problems := f.paths.memoryLimit()
			if got.Bytes != tt.want {
				t.Errorf("Bytes = %d, want %d (%+v)", got.Bytes, tt.want, got)
			}
			if tt.file != "" && got.File != filepath.Join(f.paths.Root, tt.file) {
				t.Errorf("File = %q, want %q", got.File, filepath.Join(f.paths.Root, tt.file))
			}
			switch {
			case tt.problem == "" && len(problems) > 0:
				t.Errorf("problems %q, want none", problems)
			case tt.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0].Error(), tt.problem)):
				t.Errorf("problems %q, want one holding %q", problems, tt.problem)
			}
		})
	}
}
