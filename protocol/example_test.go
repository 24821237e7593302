package protocol_test

import (
	"errors"
	"fmt"

	"github.com/nylon-functions/nylon/protocol"
)

// A caller encodes the invocation context into a request; a node decodes
// both. Buffers and decoded values can be reused across calls.
func Example() {
	inv := protocol.Invocation{
		Request: protocol.HTTPRequest{
			Method:  "GET",
			Path:    "/hello",
			Headers: []protocol.Header{{Name: "Accept", Value: "text/plain"}},
		},
		Config: []protocol.KV{{Key: "greeting", Value: "hi"}},
	}
	req := protocol.PluginRequest{
		Version: protocol.Version,
		Phase:   protocol.PhaseRequestFilter,
		Data:    protocol.AppendInvocation(nil, &inv),
	}
	msg := req.AppendMsgpack(nil)

	// On the node.
	var got protocol.PluginRequest
	if err := protocol.DecodeRequest(msg, &got); err != nil {
		fmt.Println(err)
		return
	}
	var ctx protocol.Invocation
	if err := protocol.DecodeInvocation(got.Data, &ctx); err != nil {
		fmt.Println(err)
		return
	}
	accept, _ := protocol.HeaderValue(ctx.Request.Headers, "accept")
	greeting, _ := protocol.Lookup(ctx.Config, "greeting")
	fmt.Println(got.Phase, ctx.Request.Method, ctx.Request.Path, accept, greeting)
	// Output: request_filter GET /hello text/plain hi
}

// A node answers with ops; the caller applies them in order.
func ExampleDecodeOps() {
	resp := protocol.PluginResponse{
		Version: protocol.Version,
		Action:  protocol.ActionEnd,
		Data: protocol.AppendOps(nil, []protocol.Op{
			{Code: protocol.OpSetResponseStatus, Num: 403},
			{Code: protocol.OpSetResponseBody, Value: []byte("denied")},
		}),
	}
	var got protocol.PluginResponse
	if err := protocol.DecodeResponse(resp.AppendMsgpack(nil), &got); err != nil {
		fmt.Println(err)
		return
	}
	ops, err := protocol.DecodeOps(got.Data, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Action)
	for _, op := range ops {
		fmt.Printf("%d num=%d value=%q\n", op.Code, op.Num, op.Value)
	}
	// Output:
	// End
	// 102 num=403 value=""
	// 103 num=0 value="denied"
}

// Every decoding failure is a *DecodeError naming the field; an unreadable
// version also wraps ErrUnsupportedVersion.
func ExampleDecodeRequest_error() {
	req := protocol.PluginRequest{Version: 3}
	var got protocol.PluginRequest
	err := protocol.DecodeRequest(req.AppendMsgpack(nil), &got)

	var de *protocol.DecodeError
	fmt.Println(errors.As(err, &de), de.Field)
	fmt.Println(errors.Is(err, protocol.ErrDecode), errors.Is(err, protocol.ErrUnsupportedVersion))
	fmt.Println(err)
	// Output:
	// true version
	// true true
	// decode version: unsupported version: 3 (this reader accepts 1..2)
}

// The request id travels as 16 big-endian bytes and prints as a UUID.
func ExampleParseRequestID() {
	id, err := protocol.ParseRequestID("018f3a5c-7b2e-7a11-8c4d-1e2f3a4b5c6d")
	if err != nil {
		fmt.Println(err)
		return
	}
	req := protocol.PluginRequest{Version: protocol.Version, RequestID: id}
	b := req.AppendMsgpack(nil)
	// Skip the map header, "version": 1 and the "request_id" key.
	fmt.Printf("% x\n", b[21:39])
	fmt.Println(id)
	// Output:
	// c4 10 01 8f 3a 5c 7b 2e 7a 11 8c 4d 1e 2f 3a 4b 5c 6d
	// 018f3a5c-7b2e-7a11-8c4d-1e2f3a4b5c6d
}
