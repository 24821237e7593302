package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// runCmd runs the command line to completion.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut testutil.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// background is a command running in a goroutine until stop is called.
type background struct {
	stdout, stderr testutil.SyncBuffer
	cancel         context.CancelFunc
	code           chan int
}

func startCmd(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, code: make(chan int, 1)}
	go func() { b.code <- run(ctx, args, &b.stdout, &b.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.code:
		case <-time.After(30 * time.Second):
			t.Error("command did not return within 30s of cancel")
		}
	})
	return b
}

// waitLine polls stdout until re matches and returns its first group; it
// fails early if the command exits.
func (b *background) waitLine(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var got string
	testutil.Eventually(t, 15*time.Second, 10*time.Millisecond, func() error {
		select {
		case code := <-b.code:
			b.code <- code
			t.Fatalf("command exited with %d before printing %v\nstdout:\n%s\nstderr:\n%s", code, re, b.stdout.String(), b.stderr.String())
		default:
		}
		m := re.FindStringSubmatch(b.stdout.String())
		if m == nil {
			return fmt.Errorf("no line matching %v in stdout:\n%s", re, b.stdout.String())
		}
		got = m[len(m)-1]
		return nil
	})
	return got
}

// stop cancels the command's context and returns its exit code.
func (b *background) stop(t *testing.T) int {
	t.Helper()
	b.cancel()
	select {
	case code := <-b.code:
		b.code <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("command did not return within 30s of cancel")
		return -1
	}
}

// writeGatewayConfig writes yaml as a gateway config file (--gateway-config)
// in a temporary directory and returns its path.
func writeGatewayConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
