package protocol

// Method numbers follow the Nylon plugin SDK's method table, so a caller that
// already speaks it needs no translation. Read methods are answered by the
// node from the invocation context (guest ABI `read`); write methods become
// Ops in the reply (guest ABI `write`).
const (
	MethodNext       uint32 = 1
	MethodEnd        uint32 = 2
	MethodGetPayload uint32 = 3 // WebSocket message payload, or the phase's body chunk
	// MethodError sets PluginResponse.error; it is never sent as an op.
	MethodError uint32 = 4

	// Response writes (ops 100-106), numbered as the seed's Nylon numbers
	// its methods (SET_RESPONSE_STREAM_DATA 104, _END 105, _HEADER 106), so
	// that a Rust caller reads a node's ops as it reads its own plugins'.
	OpSetResponseHeader    uint32 = 100
	OpRemoveResponseHeader uint32 = 101
	OpSetResponseStatus    uint32 = 102
	OpSetResponseBody      uint32 = 103
	OpSetStreamData        uint32 = 104
	OpSetStreamEnd         uint32 = 105
	OpSetStreamHeader      uint32 = 106

	// Upstream response reads (107-112).
	ReadResponseFullBody uint32 = 107
	ReadResponseStatus   uint32 = 108
	ReadResponseBytes    uint32 = 109
	ReadResponseHeaders  uint32 = 110
	ReadResponseDuration uint32 = 111
	ReadResponseError    uint32 = 112

	// Request reads (200-211).
	ReadRequestFullBody  uint32 = 200
	ReadRequestHeader    uint32 = 201
	ReadRequestHeaders   uint32 = 202
	ReadRequestURL       uint32 = 203
	ReadRequestPath      uint32 = 204
	ReadRequestQuery     uint32 = 205
	ReadRequestParams    uint32 = 206
	ReadRequestHost      uint32 = 207
	ReadRequestClientIP  uint32 = 208
	ReadRequestMethod    uint32 = 209
	ReadRequestBytes     uint32 = 210
	ReadRequestTimestamp uint32 = 211

	// Reads this platform adds after the SDK's table.
	ReadConfig            uint32 = 220 // key = name; empty key = every pair
	ReadRequestID         uint32 = 221 // the idempotency key, as a UUID string
	ReadRequestParam      uint32 = 222 // key = route parameter name
	ReadRequestQueryParam uint32 = 223 // key = query parameter name (first value)
	ReadRequestScheme     uint32 = 224
	ReadResponseHeader    uint32 = 225 // key = upstream response header name
	ReadBodyChunkInfo     uint32 = 226 // response_body_filter: "index,last" e.g. "0,1"
	ReadWSConnectionID    uint32 = 360
	ReadWSCloseCode       uint32 = 361 // decimal text
	ReadWSCloseReason     uint32 = 362
	ReadWSEvent           uint32 = 363 // "open", "text", "binary", "close"

	// WebSocket writes (ops 301-313).
	OpWSSendText        uint32 = 301
	OpWSSendBinary      uint32 = 302
	OpWSClose           uint32 = 303 // Num = close code, Value = reason
	OpWSJoinRoom        uint32 = 310 // Key = room
	OpWSLeaveRoom       uint32 = 311 // Key = room
	OpWSBroadcastText   uint32 = 312 // Key = room, Value = payload, Num&BroadcastExcludeSender
	OpWSBroadcastBinary uint32 = 313

	// Writes this platform adds: numbered from 400, outside the SDK's
	// table (100-112 response, 200-211 request, 301-353 WebSocket), so
	// that the SDK's numbers keep their meaning and a method the SDK adds
	// to its ranges later cannot collide with one of these.
	//
	// Request-header mutations for the upstream.
	OpSetRequestHeader    uint32 = 400
	OpRemoveRequestHeader uint32 = 401
	// OpAddResponseHeader appends a value to a response header, keeping
	// the values it already has (Go's http.Header.Add, nginx's add_header,
	// Envoy's append): the only way to send a header twice, as Set-Cookie
	// must be. Ops apply in order, so 100 then 402 gives two values, 402
	// then 100 one, and 101 removes them all. The SDK's table has no such
	// method (its 100 replaces), hence a number of the platform's own.
	// This project's callers skip an op code they do not know, so a
	// gateway that predates 402 sends the response without that value and
	// applies the reply's other ops as before; another caller (the Rust
	// Nylon) must learn the number to apply it.
	OpAddResponseHeader uint32 = 402

	// WebSocket event numbers passed to nylon_handle as `event`.
	EventWSOpen   uint32 = 350
	EventWSText   uint32 = 351
	EventWSBinary uint32 = 352
	EventWSClose  uint32 = 353
)

// BroadcastExcludeSender in Op.Num of a broadcast skips the sending connection.
const BroadcastExcludeSender = 1

// ListSep separates names and values in list-valued reads (headers, params,
// config): "name\x00value\x00name\x00value\x00". NUL cannot occur in HTTP
// header names or values, so no escaping is needed.
const ListSep = 0

// Op is one write a handler made, applied by the caller in order.
//
// Fields by code: header ops (100, 101, 400-402) use Key (name) and Value;
// 102 uses Num (status); 103 and 104 use Value; ws sends use Value; 303
// uses Num (code) and Value (reason); room ops use Key (room), broadcasts
// also Value and Num (flags).
type Op struct {
	Code  uint32
	Key   string
	Value []byte
	Num   int64
}

// ValidStatus reports whether op 102 (set status) may set code: a final
// HTTP status, 200-599. An edge cannot answer with an interim 1xx, and
// HTTP has none above 599. The node's ABI refuses the others to a guest;
// callers ignore them in a reply from any other responder.
func ValidStatus(code int64) bool { return code >= 200 && code <= 599 }

// IsResponseOp reports whether code is an HTTP response write: 100-106, or
// 402 (add header).
func IsResponseOp(code uint32) bool {
	return code >= OpSetResponseHeader && code <= OpSetStreamHeader || code == OpAddResponseHeader
}

// IsResponseHeaderOp reports whether code changes the response's headers:
// 100 set, 101 remove or 402 add. These apply where the status does (not
// in response_body_filter, whose headers are already sent).
func IsResponseHeaderOp(code uint32) bool {
	return code == OpSetResponseHeader || code == OpRemoveResponseHeader || code == OpAddResponseHeader
}

// IsRequestHeaderOp reports whether code mutates the request sent upstream.
func IsRequestHeaderOp(code uint32) bool {
	return code == OpSetRequestHeader || code == OpRemoveRequestHeader
}

// IsWSOp reports whether code is a WebSocket write (301-313).
func IsWSOp(code uint32) bool { return code >= OpWSSendText && code <= OpWSBroadcastBinary }
