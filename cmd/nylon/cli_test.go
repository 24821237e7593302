package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

const cliToken = "cli-test-token"

// platformEnv is an embedded NATS server with a registry, one node and the
// admin API on a random port: what the client commands talk to.
type platformEnv struct {
	adminURL string
	natsURL  string
}

// startPlatform runs `nylon serve` (embedded NATS, node "cli-node", admin
// API with the token cliToken; no gateway, so no dead-letter stream until a
// test makes one) on random ports: what the client commands talk to.
func startPlatform(t *testing.T) platformEnv {
	t.Helper()
	b := startCmd(t, serveArgs(t, "--role", "node,admin", "--node-id", "cli-node", "--admin-token", cliToken)...)
	b.waitLine(t, readyLine)
	return platformEnv{adminURL: b.waitLine(t, adminLine), natsURL: b.waitLine(t, natsLine)}
}

// cli runs one admin command against e with its URL and token.
func (e platformEnv) cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCmd(t, append(args, "--admin", e.adminURL, "--token", cliToken)...)
}

// mustCLI runs cli and fails the test unless it exits 0.
func (e platformEnv) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := e.cli(t, args...)
	if code != 0 {
		t.Fatalf("nylon %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (e platformEnv) invoke(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCmd(t, append([]string{"invoke"}, append(args, "--nats", e.natsURL)...)...)
}

func TestCLIDeployListInvokeRollbackRemove(t *testing.T) {
	e := startPlatform(t)
	hello := testutil.WasmPath(t, "functions/examples/hello")
	size, err := os.Stat(hello)
	if err != nil {
		t.Fatal(err)
	}

	// Flags after the positional arguments, repeated flags.
	code, out, errOut := e.cli(t, "deploy", "hello", hello, "--route", "/hello", "--route", "/hi/{name}",
		"--config", "greeting=hey", "--timeout", "500ms", "--max-workers", "2", "--description", "first")
	if code != 0 {
		t.Fatalf("deploy: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"deployed hello version 1 (active)", "request_filter", "/hello, /hi/{name}",
		"greeting=hey", "timeout 500ms, max workers 2", "first"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy output lacks %q:\n%s", want, out)
		}
	}
	last := errOut[strings.LastIndexByte(errOut, '\r')+1:]
	if want := "uploaded " + formatBytes(size.Size()); strings.TrimRight(last, " \n") != want || !strings.HasSuffix(last, "\n") {
		t.Errorf("deploy stderr = %q, want a last progress line %q", errOut, want)
	}

	// -o json is the record the API answered.
	out = e.mustCLI(t, "deploy", "-o", "json", "--description", "second", "hello", hello)
	var rec registry.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("deploy -o json: %v\n%s", err, out)
	}
	if rec.Version != 2 || rec.Name != "hello" || len(rec.SHA256) != 64 || rec.Description != "second" {
		t.Errorf("deploy -o json record = %+v", rec)
	}

	out = e.mustCLI(t, "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "CREATED") {
		t.Fatalf("ls:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "hello" || f[1] != "2" || f[2] != "request_filter" || f[3] != "-" {
		t.Errorf("ls row = %q, want hello 2 request_filter - (v2 has no routes)", lines[1])
	}

	out = e.mustCLI(t, "versions", "hello")
	if !activeVersionIs(out, "2") {
		t.Errorf("versions: want version 2 marked active:\n%s", out)
	}

	out = e.mustCLI(t, "rollback", "hello")
	if !strings.Contains(out, "hello: version 1 is active") {
		t.Errorf("rollback: %s", out)
	}
	out = e.mustCLI(t, "versions", "hello")
	if !activeVersionIs(out, "1") {
		t.Errorf("versions after rollback: want version 1 marked active:\n%s", out)
	}
	out = e.mustCLI(t, "get", "hello", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Version != 1 || rec.Config["greeting"] != "hey" {
		t.Errorf("get -o json = %+v (%v)", rec, err)
	}
	out = e.mustCLI(t, "get", "hello")
	if !strings.Contains(out, "1 (active)") || !strings.Contains(out, rec.SHA256) {
		t.Errorf("get:\n%s", out)
	}

	// The node serves the active version once its registry watch saw it.
	testutil.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		code, out, errOut := e.invoke(t, "hello", "--phase", "request_filter", "--path", "/hello?name=ana", "--header", "Accept: */*")
		if code != 0 {
			return fmt.Errorf("invoke: exit %d\n%s%s", code, out, errOut)
		}
		for _, want := range []string{"action: End", "set status 200", "set header Content-Type: application/json",
			`body: {"message":"hello, ana"}`} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("invoke output lacks %q:\n%s", want, out)
			}
		}
		return nil
	})
	code, out, errOut = e.invoke(t, "hello", "--path", "/", "-o", "json")
	var res invokeResult
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Action != "End" || len(res.Ops) == 0 {
		t.Errorf("invoke -o json: exit %d, %+v (%v)\n%s%s", code, res, err, out, errOut)
	}
	// The node echoes the traceparent invoke sent.
	if !protocol.ValidTraceparent(res.Traceparent) {
		t.Errorf("invoke -o json: traceparent %q, want the node's echo of the one sent", res.Traceparent)
	}

	out = e.mustCLI(t, "nodes")
	if !strings.Contains(out, "cli-node") || !strings.Contains(out, "hello") {
		t.Errorf("nodes:\n%s", out)
	}

	out = e.mustCLI(t, "rm", "hello")
	if out != "deleted hello\n" {
		t.Errorf("rm: %q", out)
	}
	if out := e.mustCLI(t, "ls"); out != "no functions deployed\n" {
		t.Errorf("ls after rm: %q", out)
	}
	code, _, errOut = e.cli(t, "get", "hello")
	if code != 1 || !strings.Contains(errOut, "get hello: 404 not found:") {
		t.Errorf("get after rm: exit %d, stderr %q", code, errOut)
	}
	// Once the node dropped it, nobody answers the subject.
	testutil.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		code, _, errOut := e.invoke(t, "hello", "--timeout", "500ms")
		if code != 1 || !strings.Contains(errOut, "no node serves nylon.dev.hello.request_filter") {
			return fmt.Errorf("invoke after rm: exit %d, stderr %q", code, errOut)
		}
		return nil
	})
}

// activeVersionIs reports whether the versions table marks version v active.
func activeVersionIs(table, v string) bool {
	for _, line := range strings.Split(table, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "*" {
			return f[1] == v
		}
	}
	return false
}

func TestCLIErrors(t *testing.T) {
	e := startPlatform(t)
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(bad, []byte("this is not webassembly"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := e.cli(t, "deploy", "bad", bad)
	if code != 1 || out != "" || !strings.Contains(errOut, "nylon: deploy bad: 422 invalid module: ") {
		t.Errorf("deploy of non-wasm: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out := e.mustCLI(t, "ls", "-o", "json"); strings.Contains(out, `"bad"`) {
		t.Errorf("a refused module was stored: %s", out)
	}

	// A wrong token is refused by the API.
	code, _, errOut = runCmd(t, "ls", "--admin", e.adminURL, "--token", "wrong")
	if code != 1 || !strings.Contains(errOut, "ls: 401 unauthorized") {
		t.Errorf("ls with a wrong token: exit %d, stderr %q", code, errOut)
	}
	// The token also comes from the environment.
	t.Setenv("NYLON_ADMIN_TOKEN", cliToken)
	t.Setenv("NYLON_ADMIN_URL", e.adminURL)
	if code, out, errOut := runCmd(t, "ls"); code != 0 || out != "no functions deployed\n" {
		t.Errorf("ls with NYLON_ADMIN_*: exit %d, %q %q", code, out, errOut)
	}

	// Usage errors exit 2 without calling anything.
	for _, args := range [][]string{
		{"deploy", "hello"},
		{"deploy", "Bad.Name", bad},
		{"deploy", "hello", bad, "--config", "novalue"},
		{"get"},
		{"ls", "-o", "yaml"},
		{"invoke", "hello", "--phase", "nope"},
		{"invoke", "hello", "--header", "novalue"},
		{"dlq"},
		{"dlq", "ls", "--limit", "0"},
	} {
		if code, _, errOut := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut)
		}
	}
}

func TestCLIDLQList(t *testing.T) {
	e := startPlatform(t)
	// No gateway has made the stream yet. The message also covers a
	// stream removed while gateways run, which they make again only with
	// their next dead letter.
	code, _, errOut := runCmd(t, "dlq", "ls", "--nats", e.natsURL)
	if code != 1 || !strings.Contains(errOut, "no dead-letter stream NYLON_DLQ_DEV: no gateway of env dev has started yet") ||
		!strings.Contains(errOut, "or the stream was removed") {
		t.Errorf("dlq ls without a stream: exit %d, stderr %q", code, errOut)
	}

	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := protocol.Prefix(protocol.DefaultEnv)
	if _, err := gateway.EnsureDLQ(ctx, testutil.JetStream(t, nc), prefix, gateway.DLQConfig{}, 1); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "dlq", "ls", "--nats", e.natsURL); out != "no dead letters\n" {
		t.Errorf("dlq ls of an empty stream: %q", out)
	}
	id := protocol.NewRequestID()
	req := protocol.PluginRequest{Version: protocol.Version, RequestID: id, Phase: protocol.PhaseRequestFilter}
	// A dead letter as the gateway writes it (gateway.deadLetter).
	msg := &nats.Msg{
		Subject: protocol.DLQSubject(prefix, "hello", protocol.PhaseRequestFilter),
		Data:    req.AppendMsgpack(nil),
		Header: nats.Header{
			gateway.HeaderErrorKind: []string{"Timeout"},
			// A guest's error text may hold terminal controls and tabs.
			gateway.HeaderError:    []string{"no answer\x1b[31m within\t1s"},
			gateway.HeaderAttempts: []string{"3"},
			gateway.HeaderRoute:    []string{"/hello"},
			gateway.HeaderPlugin:   []string{"hello"},
		},
	}
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	var entries []dlqEntry
	testutil.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		out := mustRun(t, "dlq", "ls", "-o", "json", "--nats", e.natsURL)
		if err := json.Unmarshal([]byte(out), &entries); err != nil {
			return fmt.Errorf("dlq ls -o json: %v\n%s", err, out)
		}
		if len(entries) != 1 {
			return fmt.Errorf("dlq ls -o json: %d entries, want 1", len(entries))
		}
		return nil
	})
	if d := entries[0]; d.Function != "hello" || d.Phase != "request_filter" || d.Kind != "Timeout" || d.Attempts != 3 ||
		d.RequestID != id.String() || d.Error != "no answer\x1b[31m within\t1s" {
		t.Errorf("dead letter = %+v", d)
	}
	out := mustRun(t, "dlq", "ls", "--nats", e.natsURL, "--limit", "5")
	// The text table prints it escaped: the terminal is not driven, and
	// the columns hold.
	for _, want := range []string{"SEQ", "FUNCTION", "hello", "request_filter", "Timeout", `no answer\x1b[31m within\x091s`, id.String()} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq ls lacks %q:\n%s", want, out)
		}
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("nylon %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// deploy --wait returns once a node serves the new version, so the function
// answers at once afterwards; with no node it fails in time, saying the
// version is stored.
func TestCLIDeployWait(t *testing.T) {
	e := startPlatform(t)
	hello := testutil.WasmPath(t, "functions/examples/hello")

	out := e.mustCLI(t, "deploy", "hello", hello, "--wait", "30s", "--quiet")
	if !strings.Contains(out, "deployed hello version 1 (active)") || !strings.Contains(out, "served by 1 node(s) after") {
		t.Fatalf("deploy --wait output:\n%s", out)
	}
	// No polling here: --wait promised a node serves it.
	if code, out, errOut := e.invoke(t, "hello", "--path", "/hello?name=w"); code != 0 || !strings.Contains(out, "hello, w") {
		t.Fatalf("invoke right after deploy --wait: exit %d\n%s%s", code, out, errOut)
	}

	out = e.mustCLI(t, "deploy", "-o", "json", "--quiet", "hello", hello, "--wait", "30s")
	var rec registry.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Version != 2 {
		t.Fatalf("deploy -o json --wait: %v\n%s", err, out)
	}
	out = e.mustCLI(t, "nodes")
	if !strings.Contains(out, "hello") || !strings.Contains(out, "cli-node") || !regexp.MustCompile(`hello\s+2\s`).MatchString(out) {
		t.Fatalf("nodes right after deploy --wait of version 2:\n%s", out)
	}

	if code, _, errOut := e.cli(t, "deploy", "hello", hello, "--wait", "-1s"); code != 2 || !strings.Contains(errOut, "--wait") {
		t.Errorf("deploy --wait -1s: exit %d, stderr %q; want a usage error", code, errOut)
	}

	// An admin API with no node behind it: the version is stored, the wait
	// fails when it is over.
	b := startCmd(t, serveArgs(t, "--role", "admin", "--admin-token", cliToken)...)
	b.waitLine(t, readyLine)
	lonely := platformEnv{adminURL: b.waitLine(t, adminLine)}
	start := time.Now()
	code, out, errOut := lonely.cli(t, "deploy", "hello", hello, "--wait", "1500ms", "--quiet")
	if code != 1 || !strings.Contains(errOut, "version 1 is stored and active, but no node served it within 1.5s") {
		t.Fatalf("deploy --wait with no node: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("deploy --wait 1500ms took %v", d)
	}
}

// Ctrl-C during deploy --wait ends only the wait: the error must say the
// version is stored and active, not a bare "context canceled" that reads
// as a deploy that did not happen.
func TestCLIDeployWaitInterrupted(t *testing.T) {
	b := startCmd(t, serveArgs(t, "--role", "admin", "--admin-token", cliToken)...)
	b.waitLine(t, readyLine)
	e := platformEnv{adminURL: b.waitLine(t, adminLine)}
	hello := testutil.WasmPath(t, "functions/examples/hello")

	d := startCmd(t, "deploy", "hello", hello, "--wait", "1m", "--quiet", "--admin", e.adminURL, "--token", cliToken)
	// No node: the wait goes on until the interrupt once the version is
	// stored.
	testutil.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		if out := e.mustCLI(t, "ls"); !strings.Contains(out, "hello") {
			return fmt.Errorf("hello not listed yet:\n%s", out)
		}
		return nil
	})
	time.Sleep(2 * waitPoll) // the CLI has read the deploy's answer and polls
	code := d.stop(t)
	if errOut := d.stderr.String(); code != 1 || !strings.Contains(errOut, "version 1 is stored and active; stopped waiting") {
		t.Fatalf("deploy --wait interrupted: exit %d\nstdout:\n%s\nstderr:\n%s", code, d.stdout.String(), errOut)
	}
}

// deploy --wait against an admin API whose node list never answers says so,
// instead of blaming the nodes.
func TestCLIDeployWaitNodeListHangs(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(registry.Record{Name: "hello", Version: 7, Active: true})
			return
		}
		<-r.Context().Done() // GET /v1/nodes: stuck
	}))
	t.Cleanup(api.Close)
	hello := testutil.WasmPath(t, "functions/examples/hello")
	code, out, errOut := runCmd(t, "deploy", "hello", hello, "--wait", "700ms", "--quiet", "--admin", api.URL, "--token", cliToken)
	if code != 1 || !strings.Contains(errOut, "version 7 is stored and active, but the admin API's node list (GET /v1/nodes) failed throughout the 700ms wait: ") || !strings.Contains(errOut, "deadline exceeded") {
		t.Fatalf("deploy --wait, node list stuck: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
