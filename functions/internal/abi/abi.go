package abi

// The numbers below are copies of protocol/method.go and protocol/phase.go
// (the guest must not import the host-side protocol package). abi_test.go
// compares every one of them with protocol's value.

// Phases, as passed to nylon_handle.
const (
	PhaseEvent              uint32 = 0 // WebSocket events; `event` says which
	PhaseRequestFilter      uint32 = 1
	PhaseResponseFilter     uint32 = 2
	PhaseResponseBodyFilter uint32 = 3
	PhaseLogging            uint32 = 4
)

// PhaseSetWebSocket is the nylon_phases bit of a module that handles
// WebSocket events; HTTP phase p is bit 1<<p.
const PhaseSetWebSocket uint32 = 1 << 5

// WebSocket events passed to nylon_handle with PhaseEvent.
const (
	EventWSOpen   uint32 = 350
	EventWSText   uint32 = 351
	EventWSBinary uint32 = 352
	EventWSClose  uint32 = 353
)

// Actions returned by nylon_handle.
const (
	ActionNext  int32 = 0
	ActionEnd   int32 = 1
	ActionError int32 = 2
)

// Read methods (the `method` of read).
const (
	GetPayload uint32 = 3 // ws payload (phase 0), body chunk (response_body_filter), else request body

	ReadResponseFullBody uint32 = 107
	ReadResponseStatus   uint32 = 108
	ReadResponseBytes    uint32 = 109
	ReadResponseHeaders  uint32 = 110
	ReadResponseDuration uint32 = 111
	ReadResponseError    uint32 = 112

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

	ReadConfig            uint32 = 220 // key = name; empty key = every pair as a list
	ReadRequestID         uint32 = 221
	ReadRequestParam      uint32 = 222
	ReadRequestQueryParam uint32 = 223
	ReadRequestScheme     uint32 = 224
	ReadResponseHeader    uint32 = 225
	ReadBodyChunkInfo     uint32 = 226 // "index,last", e.g. "3,1"

	ReadWSConnectionID uint32 = 360
	ReadWSCloseCode    uint32 = 361
	ReadWSCloseReason  uint32 = 362
	ReadWSEvent        uint32 = 363
)

// Write methods (the low 16 bits of write's `method`).
const (
	MethodError uint32 = 4 // a = error text

	OpSetResponseHeader    uint32 = 100 // a = name, b = value
	OpRemoveResponseHeader uint32 = 101 // a = name
	OpSetResponseStatus    uint32 = 102 // a = decimal status
	OpSetResponseBody      uint32 = 103 // a = body
	OpSetStreamData        uint32 = 104 // a = chunk appended to the body
	OpSetStreamEnd         uint32 = 105 // ends the streamed body
	OpSetStreamHeader      uint32 = 106 // starts a streamed body

	OpWSSendText        uint32 = 301 // a = payload
	OpWSSendBinary      uint32 = 302 // a = payload
	OpWSClose           uint32 = 303 // a = decimal code, b = reason
	OpWSJoinRoom        uint32 = 310 // a = room
	OpWSLeaveRoom       uint32 = 311 // a = room
	OpWSBroadcastText   uint32 = 312 // a = room, b = payload
	OpWSBroadcastBinary uint32 = 313 // a = room, b = payload

	OpSetRequestHeader    uint32 = 400 // a = name, b = value
	OpRemoveRequestHeader uint32 = 401 // a = name
	OpAddResponseHeader   uint32 = 402 // a = name, b = value appended to the header's values
)

// FlagBroadcastExclude in the high 16 bits of write's `method` makes a
// broadcast skip the sending connection (protocol.BroadcastExcludeSender).
const FlagBroadcastExclude uint32 = 1 << 16

// Results of write.
const (
	ResultOK          int32 = 0
	ResultNotAllowed  int32 = -1 // not allowed in this phase
	ResultTooLarge    int32 = -2 // output over the node's limit
	ResultBadArgument int32 = -3
)

// ReadAbsent is what read returns for a value that does not exist.
const ReadAbsent int32 = -1

// ListSep separates names and values in list-valued reads (202, 206, 110,
// 220 with an empty key): "name\x00value\x00name\x00value\x00".
const ListSep byte = 0

// Log levels of the log import: log/slog's numbering.
const (
	LevelDebug int32 = -4
	LevelInfo  int32 = 0
	LevelWarn  int32 = 4
	LevelError int32 = 8
)
