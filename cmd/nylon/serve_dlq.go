package main

import (
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/ws"
)

// edgeDeadLetters is the option that sends the WebSocket edge's dead
// letters (subjects under prefix) to the gateway's dead-letter writer,
// which stores them with acknowledged JetStream publishes and retries
// while the stream has no leader, instead of the edge's core publish,
// which the server drops then. *gw is read when a letter is made: it is
// set once gateway.New returns, before the component starts, and the
// edge's connections only come through the gateway.
//
// It is nil (the edge core-publishes, as when it runs alone) when no
// messaging config of cfg keeps dead letters under prefix: there is no
// stream the gateway could store them in, and every letter would be
// reported lost.
func edgeDeadLetters(gw **gateway.Gateway, cfg gateway.Config, prefix string) ws.Option {
	if !keepsDeadLetters(cfg, prefix) {
		return nil
	}
	return ws.WithDeadLetterSink(func(m *nats.Msg) bool { return (*gw).StoreDeadLetter(m) })
}

// keepsDeadLetters reports whether a messaging config of cfg has a
// dead-letter stream for prefix once the gateway started: one on prefix
// (its own subject_prefix, or none, which takes serve's) whose dlq is not
// disabled. Without messaging configs the gateway has one, on prefix.
func keepsDeadLetters(cfg gateway.Config, prefix string) bool {
	if len(cfg.Messaging) == 0 {
		return true
	}
	for _, mc := range cfg.Messaging {
		p := mc.SubjectPrefix
		if p == "" {
			p = prefix
		}
		if p == prefix && !mc.DLQ.Disabled {
			return true
		}
	}
	return false
}
