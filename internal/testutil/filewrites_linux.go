package testutil

import (
	"syscall"
	"testing"
)

// FailFileWrites makes every write to a regular file by this process fail
// (EFBIG; Go ignores the SIGXFSZ that comes with it) while fn runs:
// RLIMIT_FSIZE 0 stands in for a full disk or an exhausted open-file limit,
// and unlike either it is restored exactly. An embedded nats-server treats
// the failure as it treats ENOSPC or EMFILE: a critical write error that
// stops the stream. The limit is process-wide: the test must not be
// parallel.
func FailFileWrites(t testing.TB, fn func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	restore := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Errorf("restore RLIMIT_FSIZE: %v", err)
		}
	}
	t.Cleanup(restore) // should fn stop the test
	lim := old
	lim.Cur = 0
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	fn()
	restore()
}
