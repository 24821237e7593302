// Package ws is the WebSocket edge of Nylon Functions: it terminates client
// connections (github.com/coder/websocket), turns each connection's open,
// messages and close into events that functions answer over NATS, and fans
// room broadcasts out over NATS to every edge with members.
//
// It imports only protocol (and internal/logsample, which samples its
// per-event log lines; internal/natsready, which keeps events out of a
// reconnecting connection's buffer; internal/realip, the peer's address)
// from this project; nodes are reached through NATS alone, so an edge can
// run in its own process.
//
// Events go by request/reply to protocol.EventsSubject(prefix, function)
// (phase 0, a protocol.Invocation with WS set and the upgrade request), one
// at a time per connection and in order; different connections proceed
// concurrently. The reply's ops are applied in order: 301/302 send to the
// connection, 303 close it, 310/311 join/leave a room, 312/313 broadcast to
// a room. Handlers keep no connection state: every event carries what they
// need, and any node of the function's queue group may answer it.
//
// A room is the subject protocol.RoomSubject(prefix, room). An edge is
// subscribed to it while it has a local member; a broadcast is published
// once and each edge delivers it to its members, so every member on every
// edge gets it exactly once. Each connection has a send queue bounded in
// messages and bytes, drained by its own writer: a client that falls
// behind is closed with 1008 instead of slowing the room. A connection is
// in at most Config.MaxRooms rooms, and text that is not UTF-8 closes it
// with 1007.
//
// See docs/WEBSOCKET.md for subjects, ops, limits, close codes and metrics.
//
// # Example
//
//	edge, err := ws.New(ws.Config{Env: "dev"}, nc,
//		ws.WithLogger(logger), ws.WithRegistry(registry))
//	if err != nil {
//		return err
//	}
//	defer edge.Close(ctx)
//	mux.Handle("/chat/ws", edge.Handler("chat", map[string]string{"motd": "hi"}))
//	mux.Handle("/chat/", ws.ChatPage())
package ws
