package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/ws"
)

// In serve the WebSocket edge's dead letters go through the gateway's
// dead-letter writer (acknowledged JetStream publishes, retried while the
// stream has no leader), not the edge's core publish, which the server
// drops then. The writer's mark on a stored letter is its Nats-Msg-Id.
func TestServeEdgeDeadLettersGoThroughGatewayWriter(t *testing.T) {
	// ghost is a function no node serves: the open event finds no
	// responders and is dead-lettered.
	yaml := "routes:\n  - {path: /ghost, function: ghost, websocket: true}\n"
	cfgFile := writeGatewayConfig(t, yaml)
	b := startCmd(t, serveArgs(t, "--role", "gateway", "--gateway-config", cfgFile)...)
	b.waitLine(t, readyLine)
	gw, natsURL := b.waitLine(t, gatewayLine), b.waitLine(t, natsLine)
	defer b.stop(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+"/ghost", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusTryAgainLater {
		t.Fatalf("read: %v, want close 1013 (no node serves ghost)", err)
	}

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var dl *jetstream.RawStreamMsg
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		s, err := js.Stream(ctx, gateway.DLQStreamName("nylon.dev"))
		if err != nil {
			return err
		}
		dl, err = s.GetMsg(ctx, 1)
		return err
	})
	if dl.Subject != "nylon.dev.dlq.ghost.events" || dl.Header.Get(ws.HeaderErrorKind) != "NoResponder" {
		t.Fatalf("dead letter %s %v, want the ghost open event's NoResponder", dl.Subject, dl.Header)
	}
	if id, want := dl.Header.Get(jetstream.MsgIDHeader), dl.Subject+"/"+dl.Header.Get(ws.HeaderRequestID); id != want {
		t.Errorf("%s = %q, want %q: the letter did not go through the gateway's writer", jetstream.MsgIDHeader, id, want)
	}
}

// The edge's letters go to the gateway only when it keeps dead letters on
// the edge's prefix; otherwise the edge publishes them itself, as before.
func TestKeepsDeadLetters(t *testing.T) {
	const p = "nylon.dev"
	for _, tc := range []struct {
		name string
		ms   []gateway.MessagingConfig
		want bool
	}{
		{"implicit config", nil, true},
		{"config on serve's prefix", []gateway.MessagingConfig{{Name: "a"}}, true},
		{"config naming the prefix", []gateway.MessagingConfig{{Name: "a", SubjectPrefix: p}}, true},
		{"dlq disabled", []gateway.MessagingConfig{{Name: "a", DLQ: gateway.DLQConfig{Disabled: true}}}, false},
		{"other prefix only", []gateway.MessagingConfig{{Name: "a", SubjectPrefix: "other.pfx"}}, false},
		{"second config keeps them", []gateway.MessagingConfig{
			{Name: "a", DLQ: gateway.DLQConfig{Disabled: true}}, {Name: "b", SubjectPrefix: p},
		}, true},
	} {
		if got := keepsDeadLetters(gateway.Config{Messaging: tc.ms}, p); got != tc.want {
			t.Errorf("%s: keepsDeadLetters = %v, want %v", tc.name, got, tc.want)
		}
	}
}
