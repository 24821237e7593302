package sdk

import (
	"log/slog"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// WebSocket is one client connection, as seen from an event handler. Sends,
// closes and room operations are applied by the edge after the handler
// returns, in the order they were made, unless the handler fails (Error,
// or a panic): then none is.
//
// Each event of a connection may run on a different instance, or node:
// keep per-connection state outside the function (keyed by ID), not in
// package variables.
//
// It is reused by the next call (see the package doc's Lifetimes); keep
// ID() to refer to the connection later.
type WebSocket struct {
	c *Context
}

// Message is a message a client sent.
type Message struct {
	Binary bool   // a binary frame; false for text
	Data   []byte // valid until the handler returns; copy to keep
}

// Text returns the message's data as a string.
func (m Message) Text() string { return string(m.Data) }

// BroadcastOption changes how Broadcast delivers.
type BroadcastOption struct {
	flags uint32
}

// ExcludeSender makes a broadcast skip the connection that sends it.
func ExcludeSender() BroadcastOption { return BroadcastOption{flags: abi.FlagBroadcastExclude} }

// ID returns the connection's id, unique across the platform.
func (ws *WebSocket) ID() string { return ws.c.cachedString(cWSID, abi.ReadWSConnectionID, "") }

// Request returns the upgrade request: path, query, headers, route params.
func (ws *WebSocket) Request() *Request { return &ws.c.req }

// Send sends a text message to this connection. The error is the node's
// refusal (ErrTooLarge past the call's output limit), also reported by Err.
func (ws *WebSocket) Send(text string) error {
	return ws.c.check(abi.OpWSSendText, abi.Write(abi.OpWSSendText, text, ""))
}

// SendBinary sends a binary message to this connection.
func (ws *WebSocket) SendBinary(data []byte) error {
	return ws.c.check(abi.OpWSSendBinary, abi.WriteData(abi.OpWSSendBinary, data))
}

// Close closes the connection with code and reason (at most 123 bytes),
// after the messages sent before it; later sends of this call are dropped.
//
// The code must be one an endpoint may send in a close frame (RFC 6455
// 7.4): 1000-1003, 1007-1014 (e.g. 1000 normal closure, 1008 policy
// violation, 1011 internal error) or 3000-4999 (registered and private
// codes; 4000-4999 are the application's own). Anything else, including
// 1005 and 1006, which only report a missing close frame, is refused with
// ErrBadArgument: the edge would otherwise send 1000 in its place.
func (ws *WebSocket) Close(code int, reason string) error {
	if !sendableCloseCode(code) || len(reason) > 123 {
		return ws.c.check(abi.OpWSClose, abi.ResultBadArgument)
	}
	return ws.c.check(abi.OpWSClose, abi.WriteNum(abi.OpWSClose, int64(code), reason))
}

// sendableCloseCode reports whether code may go in a close frame: the
// codes the edge sends as given (ws.sendableCode); it replaces any other
// with 1000.
func sendableCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// JoinRoom adds the connection to room: it receives the room's broadcasts
// until it leaves or disconnects. A room name is 1-128 printable ASCII
// bytes without '.', '*', '>' or space; another is refused with
// ErrBadArgument. Joining a room the connection is in does nothing; an
// edge caps the rooms of one connection (128 by default) and skips, with a
// warning in its log, a join beyond that.
func (ws *WebSocket) JoinRoom(room string) error { return ws.roomOp(abi.OpWSJoinRoom, room) }

// LeaveRoom removes the connection from room; leaving a room it is not in
// does nothing. A closed connection leaves its rooms by itself.
func (ws *WebSocket) LeaveRoom(room string) error { return ws.roomOp(abi.OpWSLeaveRoom, room) }

func (ws *WebSocket) roomOp(method uint32, room string) error {
	if room == "" {
		return ws.c.check(method, abi.ResultBadArgument)
	}
	return ws.c.check(method, abi.Write(method, room, ""))
}

// Broadcast sends text to every member of room on every edge, including
// this connection if it is a member, unless ExcludeSender is given.
// Delivery is at most once (NATS core pub/sub). The room need not have
// members, and the connection need not be one of them.
func (ws *WebSocket) Broadcast(room, text string, opts ...BroadcastOption) error {
	method := abi.OpWSBroadcastText | broadcastFlags(opts)
	if room == "" {
		return ws.c.check(method, abi.ResultBadArgument)
	}
	return ws.c.check(method, abi.Write(method, room, text))
}

// BroadcastBinary is Broadcast with a binary message.
func (ws *WebSocket) BroadcastBinary(room string, data []byte, opts ...BroadcastOption) error {
	method := abi.OpWSBroadcastBinary | broadcastFlags(opts)
	if room == "" {
		return ws.c.check(method, abi.ResultBadArgument)
	}
	return ws.c.check(method, abi.WriteBytes(method, room, data))
}

func broadcastFlags(opts []BroadcastOption) uint32 {
	var f uint32
	for _, o := range opts {
		f |= o.flags
	}
	return f
}

// Error fails the event: the edge applies none of this call's sends,
// closes, room operations or broadcasts, closes the client with 1011
// "internal error" (when the open event fails, no close event follows),
// and logs err's text with the connection id; the client does not see the
// text. A failed close event is only logged. Failed events are not
// retried. To refuse a client with a code and reason of your own, call
// Close instead.
//
// Error(nil) fails the event with the text "unknown error". A handler that
// returns without calling Error succeeded; so does a handler after a
// refused write (see Err), unless it calls Error.
func (ws *WebSocket) Error(err error) { ws.c.Error(err) }

// Config returns the value of key in the route's config, or "" (see
// Context.Config).
func (ws *WebSocket) Config(key string) string { return ws.c.Config(key) }

// LookupConfig is Config that also reports whether key is set, so that a
// key set to "" can be told from a missing one.
func (ws *WebSocket) LookupConfig(key string) (string, bool) { return ws.c.LookupConfig(key) }

// ConfigMap returns every config pair (see Context.ConfigMap).
func (ws *WebSocket) ConfigMap() map[string]string { return ws.c.ConfigMap() }

// Log returns the function's logger (see Context.Log).
func (ws *WebSocket) Log() *slog.Logger { return ws.c.g.logger }

// Err returns the first write of this call that the node (or the SDK)
// refused, as a *WriteError, or nil. Every WebSocket operation also
// returns its own refusal.
func (ws *WebSocket) Err() error { return ws.c.err }
