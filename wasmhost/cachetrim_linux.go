package wasmhost

import (
	"io/fs"
	"syscall"
	"time"
)

// accessTime is when info's file was last read, as far as the mount keeps
// it (relatime: at most a day late), or the zero time.
func accessTime(info fs.FileInfo) time.Time {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}
	}
	return time.Unix(st.Atim.Sec, st.Atim.Nsec)
}
