package sdk

import (
	"log/slog"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// WebSocket is one client connection, as seen from an event handler. Sends,
// closes and room operations are applied by the edge after the handler
// returns, in the order they were made.
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

// Send sends a text message to this connection.
func (ws *WebSocket) Send(text string) error {
	return ws.c.check(abi.OpWSSendText, abi.Write(abi.OpWSSendText, text, ""))
}

// SendBinary sends a binary message to this connection.
func (ws *WebSocket) SendBinary(data []byte) error {
	return ws.c.check(abi.OpWSSendBinary, abi.WriteData(abi.OpWSSendBinary, data))
}

// Close closes the connection with code (RFC 6455, e.g. 1000 normal
// closure) and reason (at most 123 bytes).
func (ws *WebSocket) Close(code int, reason string) error {
	if code < 1000 || code > 4999 || len(reason) > 123 {
		return ws.c.check(abi.OpWSClose, abi.ResultBadArgument)
	}
	return ws.c.check(abi.OpWSClose, abi.WriteNum(abi.OpWSClose, int64(code), reason))
}

// JoinRoom adds the connection to room: it receives the room's broadcasts
// until it leaves or disconnects.
func (ws *WebSocket) JoinRoom(room string) error { return ws.roomOp(abi.OpWSJoinRoom, room) }

// LeaveRoom removes the connection from room.
func (ws *WebSocket) LeaveRoom(room string) error { return ws.roomOp(abi.OpWSLeaveRoom, room) }

func (ws *WebSocket) roomOp(method uint32, room string) error {
	if room == "" {
		return ws.c.check(method, abi.ResultBadArgument)
	}
	return ws.c.check(method, abi.Write(method, room, ""))
}

// Broadcast sends text to every member of room on every edge, including
// this connection if it is a member, unless ExcludeSender is given.
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

// Config returns the value of key in the route's config, or "".
func (ws *WebSocket) Config(key string) string { return ws.c.Config(key) }

// ConfigMap returns every config pair (see Context.ConfigMap).
func (ws *WebSocket) ConfigMap() map[string]string { return ws.c.ConfigMap() }

// Log returns the function's logger (see Context.Log).
func (ws *WebSocket) Log() *slog.Logger { return ws.c.g.logger }

// Err returns the first write of this call the node refused, or nil.
func (ws *WebSocket) Err() error { return ws.c.err }
