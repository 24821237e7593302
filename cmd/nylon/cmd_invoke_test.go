package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// invoke matches no route, so route parameters come from --param: hello
// reads its name from the route parameter "name" when the query has none.
func TestCLIInvokeParams(t *testing.T) {
	e := startPlatform(t)
	hello := testutil.WasmPath(t, "functions/examples/hello")
	e.mustCLI(t, "deploy", "hello", hello, "--quiet", "--route", "/hello/{name}")

	testutil.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		code, out, errOut := e.invoke(t, "hello", "--path", "/hello/ana", "--param", "name=ana", "--param", "other=x=y")
		if code != 0 || !strings.Contains(out, `body: {"message":"hello, ana"}`) {
			return fmt.Errorf("invoke --param name=ana: exit %d, want hello, ana\n%s%s", code, out, errOut)
		}
		return nil
	})
	// Without --param the path alone fills nothing.
	if code, out, errOut := e.invoke(t, "hello", "--path", "/hello/ana"); code != 0 || !strings.Contains(out, `"hello, world"`) {
		t.Errorf("invoke without --param: exit %d, want hello, world\n%s%s", code, out, errOut)
	}

	for _, bad := range [][]string{{"--param", "name"}, {"--param", "=ana"}, {"--param", "name=a", "--param", "name=b"}} {
		code, _, errOut := e.invoke(t, append([]string{"hello"}, bad...)...)
		if code != 2 || !strings.Contains(errOut, "--param") {
			t.Errorf("invoke %q: exit %d, stderr %q; want a usage error naming --param", bad, code, errOut)
		}
	}
}

// --phase events sends one WebSocket event as the edge would: the chat
// example reads its room and name from the upgrade request's query, joins
// the room on open, broadcasts each text message and leaves on close.
func TestCLIInvokeWebSocketEvents(t *testing.T) {
	e := startPlatform(t)
	chat := testutil.WasmPath(t, "functions/examples/chat")
	e.mustCLI(t, "deploy", "chat", chat, "--quiet", "--route", "/chat/ws")
	path := "/chat/ws?room=lobby&name=ana"

	testutil.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		code, out, errOut := e.invoke(t, "chat", "--phase", "events", "--event", "open", "--path", path)
		if code != 0 || !strings.Contains(out, "nylon.dev.ws.chat.events") || !strings.Contains(out, "ws join room lobby") ||
			!strings.Contains(out, `ws broadcast text to lobby: {"from":"system","text":"ana joined"}`) {
			return fmt.Errorf("invoke --event open: exit %d, want a join and a broadcast\n%s%s", code, out, errOut)
		}
		return nil
	})
	code, out, errOut := e.invoke(t, "chat", "--phase", "events", "--event", "text", "--body", "hi", "--path", path, "-o", "json")
	if code != 0 || !strings.Contains(out, `"text": "ws broadcast text to lobby: {\"from\":\"ana\",\"text\":\"hi\"}"`) {
		t.Errorf("invoke --event text --body hi: exit %d, want ana's message broadcast\n%s%s", code, out, errOut)
	}
	// Without a name the handler names the sender by its connection id.
	code, out, errOut = e.invoke(t, "chat", "--phase", "events", "--event", "text", "--body", "yo", "--path", "/chat/ws?room=r2", "--connection-id", "edge1-7")
	if code != 0 || !strings.Contains(out, `ws broadcast text to r2: {"from":"edge1-7","text":"yo"}`) {
		t.Errorf("invoke --connection-id edge1-7: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = e.invoke(t, "chat", "--phase", "events", "--event", "close", "--close-code", "1001", "--close-reason", "bye", "--path", path)
	if code != 0 || !strings.Contains(out, "ws leave room lobby") || !strings.Contains(out, `"text":"ana left"`) {
		t.Errorf("invoke --event close: exit %d, want a leave and a broadcast\n%s%s", code, out, errOut)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--phase", "events"}, "--event: --phase events needs one"},
		{[]string{"--phase", "events", "--event", "message"}, `--event "message": want open, text, binary or close`},
		{[]string{"--phase", "events", "--event", "open", "--body", "x"}, "--body: an open event has no message"},
		{[]string{"--phase", "events", "--event", "text", "--close-code", "1001"}, "only with --event close"},
		{[]string{"--phase", "events", "--event", "close", "--close-code", "99"}, "--close-code: 99"},
		{[]string{"--phase", "events", "--event", "text", "--connection-id", ""}, "--connection-id: empty"},
		{[]string{"--event", "text"}, "--event: only with --phase events"},
		{[]string{"--phase", "logging", "--close-reason", "x"}, "--close-reason: only with --phase events"},
	} {
		code, _, errOut := e.invoke(t, append([]string{"chat"}, tt.args...)...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("invoke %q: exit %d, stderr %q; want a usage error with %q", tt.args, code, errOut, tt.want)
		}
	}
}

// TestDescribeHeaderOps: invoke prints each response-header op by what it
// does, so a set and an add of the same header read apart.
func TestDescribeHeaderOps(t *testing.T) {
	for _, tc := range []struct {
		op   protocol.Op
		want string
	}{
		{protocol.Op{Code: protocol.OpSetResponseHeader, Key: "Set-Cookie", Value: []byte("a=1")}, "set header Set-Cookie: a=1"},
		{protocol.Op{Code: protocol.OpAddResponseHeader, Key: "Set-Cookie", Value: []byte("b=2")}, "add header Set-Cookie: b=2"},
		{protocol.Op{Code: protocol.OpRemoveResponseHeader, Key: "Set-Cookie"}, "remove header Set-Cookie"},
	} {
		if got := describeOp(tc.op); got != tc.want {
			t.Errorf("describeOp(%d) = %q, want %q", tc.op.Code, got, tc.want)
		}
	}
}

// The text output shows what a reply's strings hold, not what they would
// do to a terminal: escape sequences (colours, the window title, cursor
// moves), C1 controls and DEL are printed escaped; a body keeps its lines.
func TestInvokeTextEscapesTerminalControls(t *testing.T) {
	r := &invokeResult{
		Subject: "nylon.dev.f.request_filter", Action: "end",
		Error: "bad\x1b[2J\nsecond line",
		Ops: []opView{
			{Text: describeOp(protocol.Op{Code: protocol.OpSetResponseHeader, Key: "X\x1b]0;pwned\x07", Value: []byte("v\x7f\u009b1m")})},
			{Text: describeOp(protocol.Op{Code: protocol.OpAddResponseHeader, Key: "Y\x9b2J", Value: []byte("a\n  set status 200")})},
			{Text: describeOp(protocol.Op{Code: protocol.OpSetResponseBody, Value: []byte("{\n\t\"a\": 1\n}\x1b[31m")})},
		},
	}
	var b strings.Builder
	if err := r.write(&b, outputText); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsFunc(out, func(r rune) bool { return r == 0x1b || r == 0x07 || r == 0x7f || r == 0x9b }) {
		t.Fatalf("text output carries terminal controls: %q", out)
	}
	for _, want := range []string{
		"error: bad\\x1b[2J\nsecond line\n",
		"set header X\\x1b]0;pwned\\x07: v\\x7f\\u009b1m\n",
		// Not UTF-8 (a raw C1 byte), and a header value's newline.
		"add header Y\\x9b2J: a\\x0a  set status 200\n",
		"body: {\n\t\"a\": 1\n}\\x1b[31m\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}
