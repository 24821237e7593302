//go:build unix

package main

import "syscall"

// openFileLimit is the process's soft limit of open files (the Go runtime
// raises it to the hard limit at start on Linux and macOS).
func openFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur == 0 || r.Cur > 1<<30 {
		return 1 << 20 // unknown or unlimited
	}
	return int(r.Cur)
}
