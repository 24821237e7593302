// Command chat is a WebSocket chat with rooms. A client connects with
// ?room=<room>&name=<name> (room defaults to "lobby", name to the
// connection id). Everyone in the room receives JSON text messages:
//
//	{"from":"system","text":"ana joined"}
//	{"from":"ana","text":"hi"}            (the sender receives it too)
//	{"from":"system","text":"ana left"}
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o chat.wasm .
package main

import "github.com/nylon-functions/nylon/functions/sdk"

func init() {
	sdk.OnOpen(func(ws *sdk.WebSocket) {
		room, name := who(ws)
		if err := ws.JoinRoom(room); err != nil {
			ws.Log().Error("join room", "room", room, "err", err)
			return
		}
		broadcast(ws, room, "system", name+" joined")
	})
	sdk.OnMessage(func(ws *sdk.WebSocket, msg sdk.Message) {
		if msg.Binary {
			ws.Log().Warn("binary message ignored", "conn", ws.ID(), "bytes", len(msg.Data))
			return
		}
		room, name := who(ws)
		broadcast(ws, room, name, msg.Text())
	})
	sdk.OnClose(func(ws *sdk.WebSocket, code int, reason string) {
		room, name := who(ws)
		// The edge also drops a closed connection from its rooms; leaving
		// explicitly keeps the handler correct on any edge.
		if err := ws.LeaveRoom(room); err != nil {
			ws.Log().Error("leave room", "room", room, "err", err)
		}
		broadcast(ws, room, "system", name+" left")
	})
}

// who returns the connection's room and display name from its upgrade
// request's query.
func who(ws *sdk.WebSocket) (room, name string) {
	req := ws.Request()
	room = req.QueryParam("room")
	if room == "" {
		room = "lobby"
	}
	name = req.QueryParam("name")
	if name == "" {
		name = ws.ID()
	}
	return room, name
}

// broadcast sends {"from":...,"text":...} to room. The JSON is built by
// hand: reflective encoding/json costs several microseconds in WebAssembly.
func broadcast(ws *sdk.WebSocket, room, from, text string) {
	b := make([]byte, 0, len(`{"from":"","text":""}`)+len(from)+len(text)+8)
	b = append(b, `{"from":`...)
	b = sdk.AppendJSONString(b, from)
	b = append(b, `,"text":`...)
	b = sdk.AppendJSONString(b, text)
	b = append(b, '}')
	if err := ws.Broadcast(room, string(b)); err != nil {
		ws.Log().Error("broadcast", "room", room, "err", err)
	}
}

// main is never run: a reactor module starts from its init functions.
func main() {}
