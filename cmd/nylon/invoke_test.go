package main

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// invoke sends the headers every caller sends (DESIGN.md, wire protocol):
// traceparent, Nylon-Env and Nylon-Timeout-Ms, here for env prod (so over TLS with an nkey,
// as natsconn requires outside dev), and prints the traceparent the reply
// echoes.
func TestInvokeSendsTraceparentAndEnv(t *testing.T) {
	sn := testutil.RunSecureNATS(t)
	nc := sn.Connect(t)
	var echo atomic.Bool
	headers := make(chan nats.Header, 1)
	_, err := nc.Subscribe(protocol.PhaseSubject(protocol.Prefix("prod"), "hello", protocol.PhaseRequestFilter), func(m *nats.Msg) {
		var req protocol.PluginRequest
		if err := protocol.DecodeRequest(m.Data, &req); err != nil {
			t.Errorf("node: %v", err)
			return
		}
		headers <- m.Header
		resp := protocol.PluginResponse{Version: protocol.Version, RequestID: req.RequestID, Action: protocol.ActionEnd}
		reply := &nats.Msg{Subject: m.Reply, Data: resp.AppendMsgpack(nil), Header: nats.Header{}}
		if echo.Load() {
			reply.Header.Set(protocol.HeaderTraceparent, m.Header.Get(protocol.HeaderTraceparent))
		}
		if err := m.RespondMsg(reply); err != nil {
			t.Errorf("node: reply: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	args := []string{"invoke", "hello", "--env", "prod", "--nats", sn.URL, "--nats-ca", sn.CAFile, "--nats-nkey", sn.SeedFile}

	// A given traceparent is continued: same trace id and flags, a new span.
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	echo.Store(true)
	code, out, errOut := runCmd(t, append(args, "-o", "json", "--traceparent", parent)...)
	if code != 0 {
		t.Fatalf("invoke: exit %d\n%s%s", code, out, errOut)
	}
	h := <-headers
	tp := h.Get(protocol.HeaderTraceparent)
	if !protocol.ValidTraceparent(tp) || tp[:36] != parent[:36] || tp[52:] != parent[52:] || tp == parent {
		t.Errorf("traceparent %q, want a new span of %q", tp, parent)
	}
	if env := h.Values(protocol.HeaderEnv); len(env) != 1 || env[0] != "prod" {
		t.Errorf("Nylon-Env %q, want [prod]", env)
	}
	if got := h.Values(protocol.HeaderTimeout); len(got) != 1 || got[0] != "2000" {
		t.Errorf("Nylon-Timeout-Ms %q, want the default --timeout [2000]", got)
	}
	var res invokeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Traceparent != tp || res.Action != "End" {
		t.Errorf("invoke -o json = %+v (%v), want the echoed traceparent %s", res, err, tp)
	}

	// Without one, a fresh unsampled trace; the text output shows the echo.
	code, out, errOut = runCmd(t, args...)
	if code != 0 {
		t.Fatalf("invoke: exit %d\n%s%s", code, out, errOut)
	}
	tp = (<-headers).Get(protocol.HeaderTraceparent)
	if !protocol.ValidTraceparent(tp) || !strings.HasSuffix(tp, "-00") || tp[3:35] == parent[3:35] {
		t.Errorf("traceparent %q, want a fresh unsampled trace", tp)
	}
	if !strings.Contains(out, "\ntraceparent: "+tp+"\n") {
		t.Errorf("invoke output lacks the echoed traceparent %s:\n%s", tp, out)
	}

	// What is printed is the reply's: a node that echoes none shows none.
	echo.Store(false)
	code, out, errOut = runCmd(t, append(args, "-o", "json")...)
	<-headers
	res = invokeResult{}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Traceparent != "" {
		t.Errorf("invoke -o json without an echo: exit %d, %+v (%v)\n%s", code, res, err, errOut)
	}

	if code, _, errOut := runCmd(t, append(args, "--traceparent", "00-nothex")...); code != 2 || !strings.Contains(errOut, "--traceparent") {
		t.Errorf("invalid --traceparent: exit %d, stderr %q; want a usage error", code, errOut)
	}
}
