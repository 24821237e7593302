package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
)

// TestServeSubjectPrefixAndFunctionDefaults runs one serve with
// --subject-prefix acme.fn and node defaults of its own, and checks every
// place serve builds subjects: the node's endpoints, the gateway's function
// routes and its messaging configs without a subject_prefix, the WebSocket
// edge (events and rooms), the dead-letter stream; and that invoke and
// dlq ls reach them with the same flag. The node defaults take effect on a
// function deployed without limits.
func TestServeSubjectPrefixAndFunctionDefaults(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "upstream")
	}))
	defer upstream.Close()
	// ghost is a plugin no node serves: a request through /dead is a
	// NoResponder dead letter on the config "local", which has no
	// subject_prefix and so takes serve's. "other" keeps its own.
	yaml := `messaging:
  - name: local
  - name: other
    subject_prefix: other.pfx
plugins:
  - name: ghost
    messaging: local
    per_phase:
      request_filter: {on_error: end}
routes:
  - path: /dead
    upstream: ` + upstream.URL + `
    plugins: [ghost]
`
	cfgFile := writeGatewayConfig(t, yaml)
	b := startCmd(t, serveArgs(t, "--subject-prefix", "acme.fn", "--gateway-config", cfgFile,
		"--function-timeout", "1500ms", "--function-max-workers", "3")...)
	b.waitLine(t, readyLine)
	admin, gw, natsURL := b.waitLine(t, adminLine), b.waitLine(t, gatewayLine), b.waitLine(t, natsLine)
	defer b.stop(t)
	if out := b.stdout.String(); !strings.Contains(out, " serving functions on acme.fn.>\n") {
		t.Errorf("no node line with the prefix:\n%s", out)
	}

	deployModule(t, admin, "hello", testutil.Wasm(t, "functions/examples/hello"), url.Values{"route": {"/hello"}})
	deployModule(t, admin, "hostile", testutil.Wasm(t, "wasmhost/testdata/guests/hostile"), url.Values{"route": {"/sleepy"}, "config": {"mode=sleep"}})
	deployModule(t, admin, "chat", testutil.Wasm(t, "functions/examples/chat"), url.Values{"route": {"/chat/ws"}})
	var health processHealth
	testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		_, health = getProcessHealth(t, admin)
		serving := 0
		for _, f := range health.Functions {
			if f.State == platform.FunctionServing {
				serving++
			}
		}
		if serving != 3 {
			return fmt.Errorf("%d of 3 functions serving: %+v", serving, health.Functions)
		}
		return nil
	})
	// --function-max-workers: the functions were deployed without max_workers.
	for _, f := range health.Functions {
		if f.Workers != 3 {
			t.Errorf("%s: %d workers, want --function-max-workers 3", f.Name, f.Workers)
		}
	}

	// The gateway's function route reaches the node on the prefix.
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if code, _, body := get(t, gw+"/hello?name=you", nil); code != http.StatusOK || body != `{"message":"hello, you"}` {
			return fmt.Errorf("GET /hello = %d %s", code, body)
		}
		return nil
	})

	// The micro endpoint's subject, as discovery reports it.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request("$SRV.INFO.hello", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("$SRV.INFO.hello: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatalf("$SRV.INFO.hello: %v\n%s", err, msg.Data)
	}
	if len(info.Endpoints) != 1 || info.Endpoints[0].Subject != "acme.fn.hello.request_filter" {
		t.Errorf("hello endpoints %+v, want acme.fn.hello.request_filter", info.Endpoints)
	}

	// invoke calls the prefix it is given; without it, nylon.dev, where
	// nobody answers.
	code, out, errOut := runCmd(t, "invoke", "hello", "--subject-prefix", "acme.fn", "--path", "/hello?name=ana", "--nats", natsURL)
	if code != 0 || !strings.HasPrefix(out, "acme.fn.hello.request_filter ") || !strings.Contains(out, `body: {"message":"hello, ana"}`) {
		t.Errorf("invoke --subject-prefix acme.fn: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "invoke", "hello", "--timeout", "500ms", "--nats", natsURL)
	if code != 1 || !strings.Contains(errOut, "no node serves nylon.dev.hello.request_filter") {
		t.Errorf("invoke without --subject-prefix: exit %d, stderr %q", code, errOut)
	}
	// --function-timeout: a handler that sleeps is cut off after 1.5s,
	// not the built-in 1s.
	code, out, errOut = runCmd(t, "invoke", "hostile", "--config", "mode=sleep", "--timeout", "20s", "--subject-prefix", "acme.fn", "--nats", natsURL)
	if code != 1 || !strings.Contains(out, "error: timeout: request_filter ran past 1.5s") {
		t.Errorf("invoke of a sleeping handler: exit %d, want the node's timeout of 1.5s\n%s%s", code, out, errOut)
	}

	// Through the gateway the node's timeout error is the answer: the
	// gateway waits a margin longer than the function's timeout, so it does
	// not give up first (504) and dead-letter a call the node was ending.
	if code, _, body := get(t, gw+"/sleepy", nil); code != http.StatusInternalServerError || !strings.Contains(body, "plugin-error") {
		t.Errorf("GET /sleepy = %d %s, want 500 plugin-error: the node's timeout error", code, body)
	}

	// A route the listener answers itself (the chat page) is refused.
	req, err := http.NewRequest(http.MethodPut, admin+"/v1/functions/sneaky?route=/chat/x", bytes.NewReader(testutil.Wasm(t, "functions/examples/hello")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/wasm")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("deploy with route /chat/x: %v %v, want 409", resp, err)
	} else {
		resp.Body.Close()
	}

	// The WebSocket edge: the chat function's open event (events subject)
	// joins the room and broadcasts the join notice (room subject).
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	alice, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+"/chat/ws?room=prefixed&name=alice", nil)
	if err != nil {
		t.Fatalf("dial chat: %v", err)
	}
	defer alice.CloseNow()
	readUntil(ctx, t, alice, "alice")
	alice.Close(websocket.StatusNormalClosure, "")

	// A dead letter lands in the prefix's stream, where dlq ls finds it.
	if code, _, body := get(t, gw+"/dead", nil); code < 500 {
		t.Errorf("GET /dead = %d %s, want an error: nobody serves ghost", code, body)
	}
	code, _, errOut = runCmd(t, "dlq", "ls", "--nats", natsURL)
	if code != 1 || !strings.Contains(errOut, "no dead-letter stream NYLON_DLQ_DEV") {
		t.Errorf("dlq ls without --subject-prefix: exit %d, stderr %q; want no stream for nylon.dev", code, errOut)
	}
	var entries []dlqEntry
	testutil.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		out := mustRun(t, "dlq", "ls", "-o", "json", "--subject-prefix", "acme.fn", "--nats", natsURL)
		if err := json.Unmarshal([]byte(out), &entries); err != nil {
			return fmt.Errorf("dlq ls -o json: %v\n%s", err, out)
		}
		if len(entries) != 1 {
			return fmt.Errorf("dlq ls -o json: %d entries, want 1", len(entries))
		}
		return nil
	})
	if d := entries[0]; d.Function != "ghost" || d.Kind != "NoResponder" || d.Subject != "acme.fn.dlq.ghost.request_filter" || d.Route != "/dead" {
		t.Errorf("dead letter %+v", d)
	}
	js := testutil.JetStream(t, nc)
	for stream, want := range map[string]string{"NYLON_DLQ_ACME_FN": "acme.fn.dlq.>", "NYLON_DLQ_OTHER_PFX": "other.pfx.dlq.>"} {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Errorf("stream %s: %v", stream, err)
			continue
		}
		if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, []string{want}) {
			t.Errorf("stream %s subjects %v, want [%s]", stream, got, want)
		}
	}
	// NYLON_SUBJECT_PREFIX is the flag.
	t.Setenv("NYLON_SUBJECT_PREFIX", "acme.fn")
	if out := mustRun(t, "dlq", "ls", "--nats", natsURL); !strings.Contains(out, "ghost") {
		t.Errorf("dlq ls with NYLON_SUBJECT_PREFIX:\n%s", out)
	}

	if code := b.stop(t); code != 0 {
		t.Errorf("exit %d, stderr:\n%s", code, b.stderr.String())
	}
}
