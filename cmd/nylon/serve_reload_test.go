package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP re-reads --gateway-config and reloads the gateway in place: a
// route added to the file answers, one removed answers 404. A file that
// does not load is an ERROR naming its line, and the routes before keep
// answering from a process still up.
func TestServeReloadsGatewayConfigOnSIGHUP(t *testing.T) {
	upstream := pathUpstream(t)
	cfgFile := filepath.Join(t.TempDir(), "gateway.yaml")
	write := func(routes string) {
		t.Helper()
		if err := os.WriteFile(cfgFile, []byte("routes:\n"+routes), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`  - {path: /old, upstream: "` + upstream + `"}` + "\n")
	p := startProcess(t, serveArgs(t, "--role", "gateway", "--gateway-config", cfgFile)...)
	gw := p.waitLine(t, gatewayLine)
	p.waitLine(t, readyLine)
	wantGet := func(path string, code int) {
		t.Helper()
		if got, _, body := get(t, gw+path, nil); got != code {
			t.Fatalf("GET %s = %d %q, want %d", path, got, body, code)
		}
	}
	wantGet("/old", 200)
	wantGet("/new", 404)

	write(`  - {path: /new, upstream: "` + upstream + `"}` + "\n")
	p.signal(t, syscall.SIGHUP)
	p.waitLogged(t, "SIGHUP: gateway configuration reloaded")
	wantGet("/new", 200)
	wantGet("/old", 404)
	if !strings.Contains(p.stderr.String(), "routes_added=[/new] routes_removed=[/old]") {
		t.Errorf("the reload's log does not say which routes changed:\n%s", p.stderr.String())
	}

	write(`  - {path: /newer, upstreem: "` + upstream + `"}` + "\n")
	p.signal(t, syscall.SIGHUP)
	p.waitLogged(t, "SIGHUP: gateway configuration not reloaded")
	var line string
	for l := range strings.Lines(p.stderr.String()) {
		if strings.Contains(l, "SIGHUP: gateway configuration not reloaded") {
			line = l
		}
	}
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, cfgFile+`:2: field \"upstreem\" not found`) {
		t.Errorf("failed reload logged as %q, want an ERROR naming the file's line", line)
	}
	wantGet("/new", 200)
	wantGet("/newer", 404)

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\nstderr:\n%s", code, p.stderr.String())
	}
}
