package gateway_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// wsLetter is a dead letter as the WebSocket edge builds it: a failed
// event of function, on its dead-letter subject under pfx.
func wsLetter(pfx, function, requestID, data string) *nats.Msg {
	m := &nats.Msg{
		Subject: protocol.DLQSubject(pfx, function, protocol.PhaseEvent),
		Data:    []byte(data),
		Header: nats.Header{
			gateway.HeaderErrorKind: {"Timeout"},
			gateway.HeaderAttempts:  {"1"},
			"Nylon-Connection-Id":   {"edge-1"},
		},
	}
	if requestID != "" {
		m.Header.Set(gateway.HeaderRequestID, requestID)
	}
	return m
}

// StoreDeadLetter takes a dead letter another edge built (the WebSocket
// edge in nylon serve) and stores it with the gateway's writer in the
// stream of the messaging config whose prefix the subject is under, with a
// message id per letter so a retried publish is stored once. It refuses,
// storing nothing, before Start, after Close, and for a subject no config
// with a stream owns.
func TestStoreDeadLetter(t *testing.T) {
	e := newEnv(t)
	cfg, err := gateway.ParseConfig("test.yaml", []byte(yamlMessaging("")+`  - name: quiet
    subject_prefix: quiet.pfx
    dlq: {disabled: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(*cfg, e.nc, gateway.WithRegisterer(e.reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	idA, idB := protocol.NewRequestID().String(), protocol.NewRequestID().String()

	if gw.StoreDeadLetter(wsLetter(prefix, "chat", idA, "early")) {
		t.Fatal("StoreDeadLetter before Start accepted a letter")
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	for name, m := range map[string]*nats.Msg{
		"nil":                        nil,
		"no config's prefix":         wsLetter("nowhere", "chat", idA, "x"),
		"config without a dlq":       wsLetter("quiet.pfx", "chat", idA, "x"),
		"not a dlq subject":          {Subject: protocol.EventsSubject(prefix, "chat"), Data: []byte("x")},
		"dlq subject of no function": {Subject: prefix + ".dlq.x", Data: []byte("x")},
	} {
		if gw.StoreDeadLetter(m) {
			t.Errorf("%s: accepted", name)
		}
	}
	// A, B, A's publish again (a retry whose first acknowledgement was
	// lost: the stream keeps one), and two letters without a request id,
	// which get ids of their own.
	for _, m := range []*nats.Msg{
		wsLetter(prefix, "chat", idA, "a"),
		wsLetter(prefix, "chat", idB, "b"),
		wsLetter(prefix, "chat", idA, "a"),
		wsLetter(prefix, "chat", "", "c"),
		wsLetter(prefix, "chat", "", "d"),
	} {
		if !gw.StoreDeadLetter(m) {
			t.Fatalf("letter %q refused", m.Data)
		}
	}
	js := testutil.JetStream(t, e.nc)
	eventually(t, func() error { return dlqHolds(ctx, js, 4) })
	dls, err := gateway.ListDLQ(ctx, js, prefix, 10)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, gateway.DLQStreamName(prefix))
	if err != nil {
		t.Fatal(err)
	}
	var data []string
	for _, d := range dls {
		data = append(data, string(d.Payload))
		if d.Function != "chat" || d.Phase != protocol.PhaseEvent || d.Kind != "Timeout" {
			t.Errorf("dead letter %d: function %q phase %s kind %q, want chat event Timeout", d.Sequence, d.Function, d.Phase, d.Kind)
		}
		raw, err := s.GetMsg(ctx, d.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if raw.Header.Get("Nylon-Connection-Id") != "edge-1" {
			t.Errorf("dead letter %d lost its headers: %v", d.Sequence, raw.Header)
		}
		if want := raw.Header.Get(gateway.HeaderRequestID); want != "" && raw.Header.Get(jetstream.MsgIDHeader) != d.Subject+"/"+want {
			t.Errorf("dead letter %d: %s %q, want %q", d.Sequence, jetstream.MsgIDHeader, raw.Header.Get(jetstream.MsgIDHeader), d.Subject+"/"+want)
		}
	}
	// Four workers store in parallel: the order is not kept.
	slices.Sort(data)
	if got := fmt.Sprint(data); got != "[a b c d]" {
		t.Errorf("stored %s, want [a b c d]", got)
	}

	if err := gw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if gw.StoreDeadLetter(wsLetter(prefix, "chat", protocol.NewRequestID().String(), "late")) {
		t.Error("StoreDeadLetter after Close accepted a letter")
	}
	if got := testutil.MetricSum(t, e.reg, "plugins_messaging_dlq_lost_total", nil); got != 0 {
		t.Errorf("plugins_messaging_dlq_lost_total = %v, want 0", got)
	}
}
