package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/registry"
)

// A deploy stores only the routes, config and limits it is given, so an
// update that forgets --route takes the function off its URL. deploy says
// on stderr what the new version drops of the one that was active, config
// keys without their values (they may be secrets); a deploy that keeps
// everything, or the first one, says nothing.
func TestCLIDeployNotesWhatTheNewVersionDrops(t *testing.T) {
	e := startPlatform(t)
	hello := testutil.WasmPath(t, "functions/examples/hello")

	code, out, errOut := e.cli(t, "deploy", "hello", hello, "--quiet", "--route", "/hello", "--route", "/hi/{name}",
		"--config", "greeting=hey", "--config", "token=s3cret", "--timeout", "500ms", "--memory-mb", "64")
	if code != 0 || strings.Contains(errOut, "note:") {
		t.Fatalf("first deploy: exit %d, want 0 and no note\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// An update that gives only one route and one limit.
	code, out, errOut = e.cli(t, "deploy", "hello", hello, "--quiet", "--route", "/hello", "--memory-mb", "64")
	if code != 0 {
		t.Fatalf("update: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	want := "nylon: deploy hello: note: version 2 drops what version 1 had: routes /hi/{name}; config keys greeting, token; " +
		"limits timeout 500ms (a deploy does not inherit them: give --route, --config, --queue-group and the limit flags again to keep them; " +
		"`nylon rollback hello` restores version 1)\n"
	if errOut != want {
		t.Errorf("update stderr:\n%q\nwant:\n%q", errOut, want)
	}
	if strings.Contains(errOut, "s3cret") {
		t.Errorf("the note shows a config value: %q", errOut)
	}

	// Giving it all again: nothing to say, in either output format.
	code, out, errOut = e.cli(t, "deploy", "hello", hello, "--quiet", "--route", "/hello", "--memory-mb", "64", "-o", "json")
	if code != 0 || errOut != "" {
		t.Errorf("same spec again: exit %d, stderr %q; want 0 and nothing\n%s", code, errOut, out)
	}

	// A route whose parameter is renamed is the same route (chi files
	// /hi/{name} and /hi/{who} as one, and the registry refuses both in
	// one spec): nothing is dropped, and giving the old one "again", as a
	// note would advise, would be refused.
	code, out, errOut = e.cli(t, "deploy", "hello", hello, "--quiet", "--route", "/hello", "--route", "/hi/{name}", "--memory-mb", "64")
	if code != 0 {
		t.Fatalf("deploy with /hi/{name}: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = e.cli(t, "deploy", "hello", hello, "--quiet", "--route", "/hello", "--route", "/hi/{who}", "--memory-mb", "64")
	if code != 0 || errOut != "" {
		t.Errorf("deploy renaming /hi/{name} to /hi/{who}: exit %d, stderr %q; want 0 and no note\n%s", code, errOut, out)
	}

	// A queue group given once and left out next time moves the endpoints
	// back to the default group, the function's name.
	args := []string{"deploy", "hello", hello, "--quiet", "--route", "/hello", "--route", "/hi/{who}", "--memory-mb", "64"}
	if code, out, errOut = e.cli(t, append(args, "--queue-group", "workers")...); code != 0 {
		t.Fatalf("deploy with --queue-group: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = e.cli(t, args...)
	if code != 0 || !strings.Contains(errOut, "drops what version 6 had: queue group workers (now hello) (") {
		t.Errorf("deploy without --queue-group: exit %d, stderr %q; want a note of the group\n%s", code, errOut, out)
	}
}

// Deploys of one function racing each other keep the highest version
// active; the admin API answers a lower one that finished last with
// "active": false. deploy says so instead of "(active)", and --wait fails
// at once rather than waiting for a node to serve a version none will.
func TestCLIDeploySupersededIsNotActive(t *testing.T) {
	var nodeLists atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			if r.URL.Path == "/v1/nodes" {
				nodeLists.Add(1)
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"type":"https://nylon.dev/problems/not-found","status":404,"detail":"function[hello]: not found"}`)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(registry.Record{Name: "hello", Version: 4})
	}))
	t.Cleanup(api.Close)
	hello := testutil.WasmPath(t, "functions/examples/hello")
	args := []string{"deploy", "hello", hello, "--quiet", "--admin", api.URL, "--token", cliToken}

	code, out, errOut := runCmd(t, args...)
	if code != 0 || !strings.Contains(out, "deployed hello version 4 (stored, not active: a newer version was deployed meanwhile)") ||
		!strings.Contains(errOut, "note: version 4 is stored but not active") || strings.Contains(out, "(active)") {
		t.Errorf("superseded deploy: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	start := time.Now()
	code, out, errOut = runCmd(t, append(args, "--wait", "1m")...)
	if code != 1 || !strings.Contains(errOut, "version 4 is stored but not active") || !strings.Contains(errOut, "no node will serve this one") {
		t.Errorf("superseded deploy --wait: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if d := time.Since(start); d > 30*time.Second || nodeLists.Load() != 0 {
		t.Errorf("superseded deploy --wait took %v and asked for the nodes %d times; want an answer without waiting", d, nodeLists.Load())
	}
}
