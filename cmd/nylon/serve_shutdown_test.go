package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
)

// asNylon makes the test binary run main() instead of the tests, so signal
// tests send real signals to a real nylon process.
const asNylon = "NYLON_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asNylon) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

// process is a nylon command running in a process of its own.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr testutil.SyncBuffer
	exited         chan struct{} // closed once cmd.Wait returned
}

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, nil, args...)
}

// startProcessEnv is startProcess with env (KEY=value) added to the test's
// environment; a KEY= empties a variable the test has.
func startProcessEnv(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(exe, args...), exited: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), env...), asNylon+"=1")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() {
		_ = p.cmd.Wait() // the exit code is read from ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitLine polls stdout until re matches and returns its last group.
func (p *process) waitLine(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var got string
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			got = m[len(m)-1]
			return nil
		}
		select {
		case <-p.exited:
			t.Fatalf("exited with %d before printing %v\nstdout:\n%s\nstderr:\n%s", p.cmd.ProcessState.ExitCode(), re, p.stdout.String(), p.stderr.String())
		default:
		}
		return fmt.Errorf("no line matching %v in stdout:\n%s", re, p.stdout.String())
	})
	return got
}

// waitLogged polls stderr until it holds what, failing at once if the
// process exits first (a signal's default action would end it).
func (p *process) waitLogged(t *testing.T, what string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		select {
		case <-p.exited:
			t.Fatalf("serve exited (%d) before logging %q\nstderr:\n%s", p.cmd.ProcessState.ExitCode(), what, p.stderr.String())
		default:
		}
		if !strings.Contains(p.stderr.String(), what) {
			return fmt.Errorf("no %q in stderr yet", what)
		}
		return nil
	})
}

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait returns the exit code (-1 when a signal killed the process).
func (p *process) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("still running %v later\nstdout:\n%s\nstderr:\n%s", within, p.stdout.String(), p.stderr.String())
		return 0
	}
}

// freshGet is GET u on a new connection, as a load balancer opens them.
func freshGet(u string) (int, string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestServeShutdownDelayServesOn: after SIGTERM, during --shutdown-delay,
// /healthz answers 503 draining while new connections to the gateway are
// served, by the node too, and the admin API answers; then serve drains and
// exits 0, no earlier than the delay.
func TestServeShutdownDelayServesOn(t *testing.T) {
	const delay = time.Second
	p := startProcess(t, serveArgs(t, "--shutdown-delay", delay.String())...)
	p.waitLine(t, readyLine)
	admin, gw := p.waitLine(t, adminLine), p.waitLine(t, gatewayLine)
	deployModule(t, admin, "hello", testutil.Wasm(t, "functions/examples/hello"), url.Values{"route": {"/hello"}})
	testutil.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if code, body, err := freshGet(gw + "/hello?name=lb"); err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /hello = %d %s %v", code, body, err)
		}
		return nil
	})

	p.signal(t, syscall.SIGTERM)
	signaled := time.Now()
	testutil.Eventually(t, delay/2, 5*time.Millisecond, func() error {
		if code, h := getProcessHealth(t, admin); code != http.StatusServiceUnavailable || h.Status != platform.HealthUnavailable || h.State != stateDraining {
			return fmt.Errorf("/healthz = %d status %q state %q, want 503 unavailable draining", code, h.Status, h.State)
		}
		return nil
	})
	if code, body, err := freshGet(gw + "/hello?name=lb"); err != nil || code != http.StatusOK || body != `{"message":"hello, lb"}` {
		t.Errorf("during the delay, GET /hello on a new connection = %d %q %v, want 200", code, body, err)
	}
	if code, _, err := freshGet(admin + "/v1/functions"); err != nil || code != http.StatusOK {
		t.Errorf("during the delay, admin GET /v1/functions = %d %v, want 200", code, err)
	}
	if time.Since(signaled) >= delay {
		t.Fatalf("checks took %v, longer than the %v delay; the test proves nothing", time.Since(signaled), delay)
	}

	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\nstderr:\n%s", code, p.stderr.String())
	}
	if took := time.Since(signaled); took < delay {
		t.Errorf("exited %v after SIGTERM, before the %v delay", took, delay)
	}
	out := p.stdout.String()
	if !strings.Contains(out, "nylon serve: shutting down in 1s") || !strings.HasSuffix(out, "nylon serve: stopped\n") {
		t.Errorf("shutdown lines missing:\n%s", out)
	}
	if !strings.Contains(p.stderr.String(), "shutdown delay over") {
		t.Errorf("no end-of-delay log in stderr:\n%s", p.stderr.String())
	}
}

// TestServeSecondSignalCutsShutdownDelay: a second signal during the delay
// drains at once, and serve still exits 0.
func TestServeSecondSignalCutsShutdownDelay(t *testing.T) {
	p := startProcess(t, serveArgs(t, "--shutdown-delay", "1m")...)
	p.waitLine(t, readyLine)
	admin := p.waitLine(t, adminLine)

	p.signal(t, os.Interrupt)
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if code, h := getProcessHealth(t, admin); code != http.StatusServiceUnavailable || h.State != stateDraining {
			return fmt.Errorf("/healthz = %d state %q, want 503 draining", code, h.State)
		}
		return nil
	})
	p.signal(t, os.Interrupt)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after the second signal, want 0 (a drain, not a kill)\nstderr:\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "cut_short=true") || !strings.HasSuffix(p.stdout.String(), "nylon serve: stopped\n") {
		t.Errorf("want the delay cut short and a drain\nstdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
	}
}

// TestServeShutdownDelayEndsWhenAComponentDies: ShuttingDown closes at the
// stop, the components are not drained during the delay, and one that stops
// by itself ends the delay with its error.
func TestServeShutdownDelayEndsWhenAComponentDies(t *testing.T) {
	rec := &recorder{}
	var node *fakeComponent
	shuttingDown := make(chan (<-chan struct{}), 1)
	specs := []componentSpec{
		fakeSpec(rec, "node", roleNode, func(f *fakeComponent) { node = f }),
		{name: "admin", build: func(_ context.Context, d serveDeps) (component, error) {
			shuttingDown <- d.ShuttingDown
			return &fakeComponent{name: "admin", rec: rec, done: make(chan struct{})}, nil
		}},
	}
	cfg := serveConfigForTest(t, "all")
	cfg.ShutdownDelay = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := runServeWith(ctx, cfg, specs)
		errc <- err
	}()
	waitEvents(t, rec, 2)
	cancel()
	select {
	case <-<-shuttingDown:
	case <-time.After(10 * time.Second):
		t.Fatal("ShuttingDown not closed after the stop")
	}
	if got := rec.list(); len(got) != 2 {
		t.Fatalf("events %v during the delay, want no drain", got)
	}
	close(node.done) // during the delay: it ends, and serve drains
	wantNodeStopped(t, errc, rec)
}
