package protocol

import "strings"

// Invocation is everything a handler may read, decoded from
// PluginRequest.Data. The caller fills it once so handlers never need a read
// round-trip.
//
// Wire form (msgpack, maps keyed by name; nil for absent parts):
//
//	{"request": {...HTTPRequest}, "response": nil | {...HTTPResponse},
//	 "ws": nil | {...WSEvent}, "config": {"k": "v", ...}}
type Invocation struct {
	Request  HTTPRequest
	Response *HTTPResponse // set for response_filter, response_body_filter and logging
	WS       *WSEvent      // set for WebSocket events (phase 0)
	Config   []KV          // the route's / function's config, in key order
}

// HTTPRequest is the client's request as the caller saw it (for WebSocket
// events, the upgrade request, without body).
//
// Wire keys: method, scheme, host, path, query, client_ip,
// headers ([[name, value], ...] in arrival order), body (bin), params (map),
// timestamp (Unix millis).
type HTTPRequest struct {
	Method    string
	Scheme    string
	Host      string
	Path      string
	Query     string // raw query, without '?'
	ClientIP  string
	Headers   []Header
	Body      []byte
	Params    []KV // route parameters
	Timestamp uint64
}

// HTTPResponse is the upstream's response for the response phases.
//
// Wire keys: status, headers, body (bin: the full body, or in
// response_body_filter this chunk), chunk_index, last_chunk, duration_ms,
// error (the upstream error text, logging phase).
type HTTPResponse struct {
	Status     int
	Headers    []Header
	Body       []byte
	ChunkIndex uint32
	LastChunk  bool
	DurationMs uint64
	Error      string
}

// WSEventKind is the kind of a WebSocket event on the wire.
type WSEventKind string

const (
	WSOpen   WSEventKind = "open"
	WSText   WSEventKind = "text"
	WSBinary WSEventKind = "binary"
	WSClose  WSEventKind = "close"
)

// EventNumber maps the kind to the nylon_handle event argument (350-353), 0 if unknown.
func (k WSEventKind) EventNumber() uint32 {
	switch k {
	case WSOpen:
		return EventWSOpen
	case WSText:
		return EventWSText
	case WSBinary:
		return EventWSBinary
	case WSClose:
		return EventWSClose
	}
	return 0
}

// WSEvent is one WebSocket event. Wire keys: kind, connection_id, payload
// (bin), close_code, close_reason.
type WSEvent struct {
	Kind         WSEventKind
	ConnectionID string
	Payload      []byte
	CloseCode    uint16
	CloseReason  string
}

// Header is one HTTP header line; a request keeps every line in order.
type Header struct {
	Name  string
	Value string
}

// KV is one entry of a string map, kept as a slice for order and speed.
type KV struct {
	Key   string
	Value string
}

// HeaderValue returns the first value of the header name (case-insensitive).
func HeaderValue(h []Header, name string) (string, bool) {
	for _, x := range h {
		if strings.EqualFold(x.Name, name) {
			return x.Value, true
		}
	}
	return "", false
}

// Lookup returns the value of key in kvs.
func Lookup(kvs []KV, key string) (string, bool) {
	for _, x := range kvs {
		if x.Key == key {
			return x.Value, true
		}
	}
	return "", false
}
