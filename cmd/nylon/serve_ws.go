package main

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/nylon-functions/nylon/ws"
)

// maxWSMessageBytes bounds --ws-max-message-bytes at nats-server's own
// ceiling of max_payload: every client message travels as one NATS
// request, so no server could carry a larger one.
const maxWSMessageBytes = 64 << 20

// wsLimits are the WebSocket edge's settings an operator tunes (role
// gateway). Zero is the ws package's default, as in ws.Config, so a serve
// without the flags builds the edge it always did.
type wsLimits struct {
	// Origins are extra allowed Origin host patterns
	// (ws.Config.OriginPatterns); the request's own host is always allowed.
	Origins         []string
	MaxConns        int
	MaxMessageBytes int
	EventTimeout    time.Duration
	MaxRooms        int
	// PingInterval follows ws.Config: negative turns keep-alive pings off.
	PingInterval time.Duration
}

func (l *wsLimits) register(f *flagSet) {
	f.List(&l.Origins, "ws-origins", "pattern,...", "NYLON_WS_ORIGINS", nil,
		"foreign browser origins allowed to open WebSockets, besides the request's own host: host patterns as in path.Match (app.example.com, *.example.com) or scheme://host patterns; others get 403 (role gateway)")
	f.Int(&l.MaxConns, "ws-max-connections", "n", "NYLON_WS_MAX_CONNECTIONS", ws.DefaultMaxConnections,
		"WebSocket connections open at once on this edge (about 37 KB of memory each when idle); more get 503 with Retry-After: 1. 0: the default")
	f.Int(&l.MaxMessageBytes, "ws-max-message-bytes", "bytes", "NYLON_WS_MAX_MESSAGE_BYTES", ws.DefaultMaxMessageSize,
		fmt.Sprintf("largest message a WebSocket client may send; a larger one closes the connection with 1009. At most %d; a message whose event exceeds NATS max_payload closes its connection with 1011. 0: the default", maxWSMessageBytes))
	f.Duration(&l.EventTimeout, "ws-event-timeout", "NYLON_WS_EVENT_TIMEOUT", ws.DefaultEventTimeout,
		"time a function has to answer one WebSocket event (open, message, close); past it the connection is closed with 1011. 0: the default")
	f.Int(&l.MaxRooms, "ws-max-rooms", "n", "NYLON_WS_MAX_ROOMS", ws.DefaultMaxRooms,
		"rooms one WebSocket connection may be in at once; a join beyond it is skipped with a WARN line. 0: the default")
	f.Duration(&l.PingInterval, "ws-ping-interval", "NYLON_WS_PING_INTERVAL", ws.DefaultPingInterval,
		fmt.Sprintf("how often the edge pings each WebSocket client; one whose pong takes over %v is dropped. 0: the default; negative: no pings", ws.DefaultPingTimeout))
}

// validate refuses what ws.New would refuse, and origin patterns the
// WebSocket library would only fail on at each handshake (as a 403), so
// both stop serve before anything starts.
func (l *wsLimits) validate() error {
	for _, p := range l.Origins {
		if err := ws.CheckOriginPattern(p); err != nil {
			return fmt.Errorf("--ws-origins: %q: %w (want a host pattern as in path.Match, such as *.example.com)", p, err)
		}
	}
	if l.MaxConns < 0 {
		return fmt.Errorf("--ws-max-connections: %d is negative (0: the default, %d)", l.MaxConns, ws.DefaultMaxConnections)
	}
	if l.MaxMessageBytes < 0 || l.MaxMessageBytes > maxWSMessageBytes {
		return fmt.Errorf("--ws-max-message-bytes: %d: want 1 to %d (0: the default, %d)", l.MaxMessageBytes, maxWSMessageBytes, ws.DefaultMaxMessageSize)
	}
	if l.EventTimeout < 0 {
		return fmt.Errorf("--ws-event-timeout: %v is negative (0: the default, %v)", l.EventTimeout, ws.DefaultEventTimeout)
	}
	if l.MaxRooms < 0 {
		return fmt.Errorf("--ws-max-rooms: %d is negative (0: the default, %d)", l.MaxRooms, ws.DefaultMaxRooms)
	}
	return nil
}

// anyOrigin returns the first origin pattern that matches every origin
// ("*", "*://*"), or "".
func (l *wsLimits) anyOrigin() string {
	for _, p := range l.Origins {
		p = strings.ToLower(p)
		// A pattern with "://" is matched against scheme://host, others
		// against the host (coder/websocket): one that takes two hosts with
		// nothing in common takes them all.
		for _, prefix := range []string{"", "https://", "http://"} {
			a, _ := path.Match(p, prefix+"evil.invalid")
			b, _ := path.Match(p, prefix+"x")
			if a && b {
				return p
			}
		}
	}
	return ""
}

// apply sets the edge's fields of cfg.
func (l *wsLimits) apply(cfg *ws.Config) {
	cfg.OriginPatterns = l.Origins
	cfg.MaxConnections = l.MaxConns
	cfg.MaxMessageSize = int64(l.MaxMessageBytes)
	cfg.EventTimeout = l.EventTimeout
	cfg.MaxRooms = l.MaxRooms
	cfg.PingInterval = l.PingInterval
}
