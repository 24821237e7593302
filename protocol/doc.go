// Package protocol holds the wire contract between callers (the gateway, the
// WebSocket edge, or any proxy such as the Rust "Nylon") and platform nodes:
// the v1 msgpack envelope, the invocation context a handler reads, the ops it
// writes, phases and method numbers, subject builders and the caller error
// taxonomy.
//
// It imports nothing from this project; every other package imports it.
//
// # Example
//
//	req := protocol.PluginRequest{
//		Version:   protocol.Version,
//		RequestID: protocol.NewRequestID(),
//		Phase:     protocol.PhaseRequestFilter,
//		Data:      protocol.AppendInvocation(nil, &inv),
//	}
//	b := req.AppendMsgpack(nil)
//	subject := protocol.PhaseSubject("nylon.dev", "auth", protocol.PhaseRequestFilter)
package protocol
