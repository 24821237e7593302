package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// publishDeadLetter stores a dead letter as the gateway writes it
// (gateway.deadLetter): a request_filter request of function for
// /hello?name=<name>, and returns its sequence and request id.
func publishDeadLetter(ctx context.Context, t *testing.T, js jetstream.JetStream, function, name string) (uint64, protocol.RequestID) {
	t.Helper()
	prefix := protocol.Prefix(protocol.DefaultEnv)
	inv := protocol.Invocation{Request: protocol.HTTPRequest{
		Method: "GET", Scheme: "http", Host: "localhost", Path: "/hello", Query: "name=" + name,
		ClientIP: "127.0.0.1", Timestamp: uint64(time.Now().UnixMilli()),
	}}
	id := protocol.NewRequestID()
	req := protocol.PluginRequest{Version: protocol.Version, RequestID: id, Phase: protocol.PhaseRequestFilter,
		Data: protocol.AppendInvocation(nil, &inv), Timestamp: uint64(time.Now().UnixMilli())}
	ack, err := js.PublishMsg(ctx, &nats.Msg{
		Subject: protocol.DLQSubject(prefix, function, protocol.PhaseRequestFilter),
		Data:    req.AppendMsgpack(nil),
		Header: nats.Header{
			gateway.HeaderErrorKind:    {"Timeout"},
			gateway.HeaderError:        {"no answer within 1s"},
			gateway.HeaderAttempts:     {"3"},
			gateway.HeaderRoute:        {"/hello"},
			gateway.HeaderPlugin:       {function},
			gateway.HeaderRequestID:    {id.String()},
			protocol.HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			protocol.HeaderEnv:         {protocol.DefaultEnv},
		},
	})
	if err != nil {
		t.Fatalf("publishing a dead letter of %s: %v", function, err)
	}
	return ack.Sequence, id
}

// dlqSequences returns the sequences `nylon dlq ls -o json` shows.
func dlqSequences(t *testing.T, natsURL string) []uint64 {
	t.Helper()
	var entries []dlqEntry
	out := mustRun(t, "dlq", "ls", "-o", "json", "--nats", natsURL)
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("dlq ls -o json: %v\n%s", err, out)
	}
	seqs := make([]uint64, len(entries))
	for i, e := range entries {
		seqs[i] = e.Sequence
	}
	return seqs
}

// A dead letter of a served function replays (End), stays without
// --delete and is gone with it; one of a function nobody serves fails with
// exit 1 and stays, --delete or not; a sequence that is no dead letter is
// refused before anything is replayed.
func TestCLIDLQReplay(t *testing.T) {
	e := startPlatform(t)
	e.mustCLI(t, "deploy", "hello", testutil.WasmPath(t, "functions/examples/hello"))
	testutil.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		if code, out, errOut := e.invoke(t, "hello"); code != 0 {
			return fmt.Errorf("invoke hello: exit %d\n%s%s", code, out, errOut)
		}
		return nil
	})

	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := testutil.JetStream(t, nc)
	if _, err := gateway.EnsureDLQ(ctx, js, protocol.Prefix(protocol.DefaultEnv), gateway.DLQConfig{}, 1); err != nil {
		t.Fatal(err)
	}
	helloSeq, helloID := publishDeadLetter(ctx, t, js, "hello", "ana")
	ghostSeq, ghostID := publishDeadLetter(ctx, t, js, "ghost", "bob")
	hello, ghost := strconv.FormatUint(helloSeq, 10), strconv.FormatUint(ghostSeq, 10)

	// Replayed and kept.
	out := mustRun(t, "dlq", "replay", hello, "--nats", e.natsURL)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "SEQ FUNCTION PHASE REQUEST_ID RESULT" ||
		strings.Join(strings.Fields(lines[1]), " ") != hello+" hello request_filter "+helloID.String()+" End" ||
		lines[2] != "1 replayed: 1 ok, 0 handler error, 0 failed; 0 deleted" {
		t.Errorf("dlq replay %s:\n%s", hello, out)
	}
	var res []replayResult
	out = mustRun(t, "dlq", "replay", "-o", "json", hello, "--nats", e.natsURL)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("dlq replay -o json: %v\n%s", err, out)
	}
	if len(res) != 1 || res[0].Sequence != helloSeq || res[0].Result != "ok" || res[0].Action != "End" || res[0].Deleted ||
		res[0].RequestID != helloID.String() || res[0].Subject != "nylon.dev.hello.request_filter" ||
		!strings.HasPrefix(res[0].Traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Errorf("dlq replay -o json = %+v", res)
	}
	if got := dlqSequences(t, e.natsURL); len(got) != 2 {
		t.Errorf("after a replay without --delete, dlq ls shows %v, want both letters", got)
	}

	// Nobody serves ghost: a transport failure, never deleted.
	code, out, errOut := runCmd(t, "dlq", "replay", "--delete", ghost, "--timeout", "1s", "--nats", e.natsURL)
	if code != 1 || !strings.Contains(out, "failed: no node serves nylon.dev.ghost.request_filter") ||
		!strings.Contains(out, ghostID.String()) || strings.Contains(out, "(deleted)") ||
		!strings.Contains(errOut, "1 of 1 dead letters got no answer") {
		t.Errorf("dlq replay --delete of ghost: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// --all --delete: hello is answered and deleted, ghost fails and stays.
	code, out, errOut = runCmd(t, "dlq", "replay", "--all", "--delete", "-o", "json", "--nats", e.natsURL)
	res = nil
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("dlq replay --all -o json: %v\n%s", err, out)
	}
	if code != 1 || len(res) != 2 ||
		res[0].Sequence != helloSeq || res[0].Result != "ok" || !res[0].Deleted ||
		res[1].Sequence != ghostSeq || res[1].Result != "failed" || res[1].Deleted || res[1].Function != "ghost" {
		t.Errorf("dlq replay --all --delete: exit %d, %+v\nstderr: %s", code, res, errOut)
	}
	if got := dlqSequences(t, e.natsURL); len(got) != 1 || got[0] != ghostSeq {
		t.Errorf("after replay --all --delete, dlq ls shows %v, want only ghost's %d", got, ghostSeq)
	}

	// hello's letter is gone: refused, and ghost (given too) is not replayed.
	code, out, errOut = runCmd(t, "dlq", "replay", ghost, hello, "--nats", e.natsURL)
	if code != 1 || out != "" || !strings.Contains(errOut, "sequence "+hello+": no dead letter with it in NYLON_DLQ_DEV") {
		t.Errorf("dlq replay of a deleted letter: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// --function filters --all: nothing of hello is left.
	if out := mustRun(t, "dlq", "replay", "--all", "--function", "hello", "--nats", e.natsURL); out != "no dead letters\n" {
		t.Errorf("dlq replay --all --function hello with no hello letter left: %q", out)
	}

	// A handler that answers Error: an answer, so exit 0 and, with
	// --delete, the letter goes (replaying again would fail the same way).
	e.mustCLI(t, "deploy", "failing", testutil.WasmPath(t, "platform/testdata/guests/counter"), "--config", "fail=boom", "--wait", "30s", "--quiet")
	failSeq, _ := publishDeadLetter(ctx, t, js, "failing", "cy")
	fail := strconv.FormatUint(failSeq, 10)
	code, out, errOut = runCmd(t, "dlq", "replay", "--delete", "-o", "json", fail, "--nats", e.natsURL)
	res = nil
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("dlq replay of failing -o json: %v\n%s", err, out)
	}
	if code != 0 || len(res) != 1 || res[0].Result != "plugin_error" || res[0].Action != "Error" ||
		!strings.Contains(res[0].Error, "boom") || !res[0].Deleted {
		t.Errorf("dlq replay --delete of a handler Error: exit %d, %+v\nstderr: %s", code, res, errOut)
	}
	if got := dlqSequences(t, e.natsURL); slices.Contains(got, failSeq) {
		t.Errorf("after replay --delete of a handler Error, dlq ls still shows %d: %v", failSeq, got)
	}
}
