package main

import (
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/internal/testutil"
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
