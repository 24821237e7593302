package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nylon-functions/nylon/protocol"
)

// phaseAnswer is what a phase request got back.
type phaseAnswer struct {
	reply   *nats.Msg
	elapsed time.Duration
	service *serviceErr             // a node's micro error reply; resp is then empty
	resp    protocol.PluginResponse // the decoded answer otherwise
}

// callPhase sends data (an encoded PluginRequest) to subject as every Nylon
// caller does, with traceparent, Nylon-Env and Nylon-Timeout-Ms, and waits
// at most timeout for the answer. Errors are the request's (nats.go's:
// nats.ErrNoResponders, context.DeadlineExceeded, ...) or, for an answer
// that does not decode, one wrapping protocol.ErrDecode. A micro error
// reply is an answer, in phaseAnswer.service.
func callPhase(ctx context.Context, nc *nats.Conn, subject string, data []byte, traceparent, env string, timeout time.Duration) (phaseAnswer, error) {
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
		protocol.HeaderTraceparent: {traceparent},
		protocol.HeaderEnv:         {env},
		protocol.HeaderTimeout:     {protocol.FormatTimeout(timeout)},
	}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	a := phaseAnswer{reply: reply, elapsed: time.Since(start)}
	if err != nil {
		return a, err
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		a.service = &serviceErr{Code: code, Description: reply.Header.Get(micro.ErrorHeader)}
		return a, nil
	}
	return a, protocol.DecodeResponse(reply.Data, &a.resp) // a *DecodeError wraps ErrDecode
}
