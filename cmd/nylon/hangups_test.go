package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// A SIGHUP before serve has installed its reload handler neither kills it
// nor stops it from starting. The window is made deterministic with a FIFO
// as --gateway-config: serve blocks reading it, well after main started
// and before the handler is installed, until the test writes the file, and
// the test's open of the FIFO returns only once serve has opened it. A HUP
// sent then kills a serve whose main does not catch SIGHUP at once.
// Signals in the first milliseconds of the process, before main runs at
// all, are out of reach of any Go code and not sent.
func TestServeSurvivesSIGHUPBeforeStart(t *testing.T) {
	upstream := pathUpstream(t)
	dir := t.TempDir()
	cfgFile := gatewayConfigFIFO(t, dir)
	routes := []byte(`routes:` + "\n" + `  - {path: /up, upstream: "` + upstream + `"}` + "\n")

	p := startProcess(t, serveArgs(t, "--role", "gateway", "--gateway-config", cfgFile)...)
	fifo := openFIFOReadBy(t, p, cfgFile)
	defer fifo.Close()
	// Reloads from now on read a regular file; serve keeps the FIFO open.
	regular := filepath.Join(dir, "gateway.yaml.new")
	if err := os.WriteFile(regular, routes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(regular, cfgFile); err != nil {
		t.Fatal(err)
	}

	p.signal(t, syscall.SIGHUP)
	select {
	case <-p.exited:
		t.Fatalf("a SIGHUP while serve read its configuration ended it (exit %d)\nstderr:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr.String())
	case <-time.After(200 * time.Millisecond): // the default action is immediate
	}
	if _, err := fifo.Write(routes); err != nil {
		t.Fatalf("write the configuration: %v", err)
	}
	fifo.Close()

	// And one every few milliseconds until ready: whatever the moment of
	// start-up, none kills it.
	ready := make(chan struct{})
	hups := make(chan int, 1)
	go func() {
		n := 0
		defer func() { hups <- n }()
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ready:
				return
			case <-tick.C:
				if p.cmd.Process.Signal(syscall.SIGHUP) != nil {
					return
				}
				n++
			}
		}
	}()
	gw := p.waitLine(t, gatewayLine)
	p.waitLine(t, readyLine)
	close(ready)
	t.Logf("%d SIGHUPs during start-up", 1+<-hups)
	if code, body := httpGet(t, gw+"/up"); code != http.StatusOK || body != "upstream /up" {
		t.Errorf("GET /up = %d %q, want 200 from the upstream", code, body)
	}

	// The reload handler has SIGHUP now: one more reloads the file.
	const reloaded = "SIGHUP: gateway configuration reloaded"
	before := strings.Count(p.stderr.String(), reloaded)
	p.signal(t, syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := strings.Count(p.stderr.String(), reloaded); n == before {
			return fmt.Errorf("no new %q in stderr:\n%s", reloaded, p.stderr.String())
		}
		return nil
	})
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\nstderr:\n%s", code, p.stderr.String())
	}
}

// pathUpstream is an upstream answering "upstream <path>", closed with
// the test.
func pathUpstream(t *testing.T) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "upstream "+r.URL.Path)
	}))
	t.Cleanup(up.Close)
	return up.URL
}

// gatewayConfigFIFO makes a FIFO named gateway.yaml in dir: serve, given
// it as --gateway-config, blocks reading it until the test writes it.
func gatewayConfigFIFO(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "gateway.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openFIFOReadBy opens the FIFO at path for writing, which returns once
// serve p has opened it to read (its --gateway-config): serve then waits
// for what the test writes.
func openFIFOReadBy(t *testing.T, p *process, path string) *os.File {
	t.Helper()
	type result struct {
		f   *os.File
		err error
	}
	opened := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		opened <- result{f, err}
	}()
	select {
	case r := <-opened:
		if r.err != nil {
			t.Fatalf("open the FIFO: %v", r.err)
		}
		return r.f
	case <-p.exited:
		t.Fatalf("serve exited (%d) before reading --gateway-config\nstderr:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not open --gateway-config within 30s")
	}
	return nil
}

// A SIGHUP after serve read --gateway-config and before its gateway is
// built is not lost: the gateway reloads the file as soon as it is built,
// so a file changed in that window (a deploy's "write, then reload" racing
// a restart) is what serves. serve reads the first version from a FIFO;
// the second is renamed over it before the HUP, which comes while serve
// is still starting its embedded NATS server, long before the gateway.
func TestServeReloadsAfterSIGHUPDuringStart(t *testing.T) {
	upstream := pathUpstream(t)
	dir := t.TempDir()
	cfgFile := gatewayConfigFIFO(t, dir)
	route := func(path string) []byte {
		return []byte("routes:\n  - {path: " + path + `, upstream: "` + upstream + `"}` + "\n")
	}

	p := startProcess(t, serveArgs(t, "--role", "gateway", "--gateway-config", cfgFile)...)
	fifo := openFIFOReadBy(t, p, cfgFile)
	regular := filepath.Join(dir, "gateway.yaml.new")
	if err := os.WriteFile(regular, route("/second"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(regular, cfgFile); err != nil {
		t.Fatal(err)
	}
	if _, err := fifo.Write(route("/first")); err != nil {
		t.Fatalf("write the configuration: %v", err)
	}
	fifo.Close()
	p.signal(t, syscall.SIGHUP)

	gw := p.waitLine(t, gatewayLine)
	p.waitLine(t, readyLine)
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if code, body := httpGet(t, gw+"/second"); code != http.StatusOK || body != "upstream /second" {
			return fmt.Errorf("GET /second = %d %q, want 200 from the upstream: the SIGHUP during start-up was lost\nstderr:\n%s",
				code, body, p.stderr.String())
		}
		return nil
	})
	if code, _ := httpGet(t, gw+"/first"); code != http.StatusNotFound {
		t.Errorf("GET /first = %d, want 404: the file read at start was replaced", code)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\nstderr:\n%s", code, p.stderr.String())
	}
}

// Commands other than serve keep SIGHUP's default action: a hang-up (the
// terminal closed) ends them. invoke is caught while it waits for a NATS
// server that accepted its connection and says nothing, so the HUP comes
// after main started and before the 2 s connect timeout would end it.
func TestSIGHUPEndsOtherCommands(t *testing.T) {
	url, accepted := silentNATS(t)
	p := startProcess(t, "invoke", "--nats", url, "hello")
	waitConnected(t, p, accepted)
	p.signal(t, syscall.SIGHUP)
	p.wait(t, 30*time.Second)
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
		t.Fatalf("invoke after SIGHUP: %v, want killed by SIGHUP\nstderr:\n%s", p.cmd.ProcessState, p.stderr.String())
	}
}

// silentNATS is a "NATS server" on loopback that accepts one connection
// and says nothing, so a client command waits there (for its connect
// timeout) while the test signals it; the connection is closed with the
// test.
func silentNATS(t *testing.T) (url string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			t.Cleanup(func() { c.Close() })
			ch <- c
		}
	}()
	return "nats://" + ln.Addr().String(), ch
}

// waitConnected waits until command p has connected to silentNATS.
func waitConnected(t *testing.T, p *process, accepted <-chan net.Conn) {
	t.Helper()
	select {
	case <-accepted:
	case <-p.exited:
		t.Fatalf("the command exited (%d) before connecting\nstderr:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("the command did not connect within 30s")
	}
}

// A command started with SIGHUP ignored (nohup) keeps ignoring it: main's
// early catch must hand back the ignored disposition, not the default
// action, or "nohup nylon invoke ..." would die when the terminal closes.
func TestNohupCommandsKeepIgnoringSIGHUP(t *testing.T) {
	url, accepted := silentNATS(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The shell ignores SIGHUP and execs the test binary as nylon (the
	// same process), which inherits the ignored disposition, as under
	// nohup.
	p := &process{exited: make(chan struct{})}
	p.cmd = exec.Command("sh", "-c", `trap '' HUP; exec "$0" "$@"`, exe,
		"invoke", "--nats", url, "hello")
	p.cmd.Env = append(os.Environ(), asNylon+"=1")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	waitConnected(t, p, accepted)
	p.signal(t, syscall.SIGHUP)
	p.wait(t, 30*time.Second)
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || ws.Signaled() {
		t.Fatalf("nohup invoke after SIGHUP: %v, want it to end on its own (the connect timeout)\nstderr:\n%s", p.cmd.ProcessState, p.stderr.String())
	}
}
