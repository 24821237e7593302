package protocol

import (
	"bytes"
	"strings"
	"testing"
)

// The tests in this file build every message from hand-written hex, as a
// Rust peer using rmp_serde::to_vec_named (or a newer or differently
// declared one) would send it, so that a bug shared by our encoder and the
// test builders (mUint, mMap, ...) cannot hide. Values are annotated hex as
// in testdata/*.hex: '#' starts a comment.

// Map keys as rmp-serde writes struct field names: fixstr.
const (
	hVersion   = "a7 76 65 72 73 69 6f 6e"          // "version"
	hRequestID = "aa 72 65 71 75 65 73 74 5f 69 64" // "request_id"
	hSessionID = "aa 73 65 73 73 69 6f 6e 5f 69 64" // "session_id"
	hPhase     = "a5 70 68 61 73 65"                // "phase"
	hMethod    = "a6 6d 65 74 68 6f 64"             // "method"
	hData      = "a4 64 61 74 61"                   // "data"
	hTimestamp = "a9 74 69 6d 65 73 74 61 6d 70"    // "timestamp"
	hAction    = "a6 61 63 74 69 6f 6e"             // "action"
	hError     = "a5 65 72 72 6f 72"                // "error"

	// goldenID as bin8 of 16 bytes, big-endian.
	hID = "c4 10 01 8f 3a 5c 7b 2e 7a 11 8c 4d 1e 2f 3a 4b 5c 6d"
)

// hexFields is a message's entries as hex: key and value per entry.
type hexFields [][2]string

// msg encodes the entries as a fixmap (at most 15) in the given order.
func (fs hexFields) msg(t testing.TB) []byte {
	t.Helper()
	if len(fs) > 15 {
		t.Fatalf("%d entries do not fit a fixmap", len(fs))
	}
	var s strings.Builder
	s.WriteString("8" + string("0123456789abcdef"[len(fs)]) + " ") // fixmap header
	for _, f := range fs {
		s.WriteString(f[0] + " " + f[1] + "\n")
	}
	return parseHex(t, s.String())
}

// with returns fs with key's value replaced (keys compared as hex), or the
// entry appended.
func (fs hexFields) with(key, val string) hexFields {
	out := append(hexFields(nil), fs...)
	for i := range out {
		if out[i][0] == key {
			out[i][1] = val
			return out
		}
	}
	return append(out, [2]string{key, val})
}

// without returns fs without key.
func (fs hexFields) without(key string) hexFields {
	var out hexFields
	for _, f := range fs {
		if f[0] != key {
			out = append(out, f)
		}
	}
	return out
}

// rmpRequest is goldenRequest as rmp_serde writes it.
func rmpRequest() hexFields {
	return hexFields{
		{hVersion, "01"},
		{hRequestID, hID},
		{hSessionID, "cd 01 2c"},
		{hPhase, "01"},
		{hMethod, "cc c8"},
		{hData, "c4 03 01 02 03"},
		{hTimestamp, "cf 00 00 01 8b cf e5 68 00"},
	}
}

// rmpResponse is goldenResponse as rmp_serde writes it.
func rmpResponse() hexFields {
	return hexFields{
		{hVersion, "01"},
		{hRequestID, hID},
		{hSessionID, "cd 01 2c"},
		{hAction, "a3 45 6e 64"}, // "End"
		{hData, "c4 01 90"},
		{hError, "c0"},
	}
}

// Values a newer peer might put under a key this reader does not know.
var hUnknownValues = map[string]string{
	"nested map and array": "82 a1 61 93 01 a1 78 c0 a1 62 80",          // {"a": [1, "x", nil], "b": {}}
	"map16 of ext values":  "de 00 02 01 d4 01 02 02 c7 03 05 61 62 63", // {1: fixext1, 2: ext8}
	"ext16 and ext32":      "92 c8 00 02 ff 01 02 c9 00 00 00 01 7f 09", // [ext16, ext32]
	"timestamp ext":        "d6 ff 65 53 f1 00",
	"fixext16":             "d8 05 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f",
	"array32 of floats":    "dd 00 00 00 02 ca 3f 80 00 00 cb 3f f0 00 00 00 00 00 00",
	"bin32":                "c6 00 00 00 02 ab cd",
	"str16":                "da 00 03 61 62 63",
	"nil":                  "c0",
	"negative int64":       "d3 80 00 00 00 00 00 00 00",
}

func TestRmpRequestAccepted(t *testing.T) {
	base := rmpRequest()
	want := goldenRequest()
	reversed := make(hexFields, len(base))
	for i, f := range base {
		reversed[len(base)-1-i] = f
	}
	cases := []struct {
		name string
		in   hexFields
		edit func(*PluginRequest)
	}{
		{"as rmp_serde writes it", base, nil},
		{"keys in reverse order", reversed, nil},
		{"data missing", base.without(hData), func(r *PluginRequest) { r.Data = nil }},
		{"data nil", base.with(hData, "c0"), func(r *PluginRequest) { r.Data = nil }},
		{"data as the seed's Vec<u8>: array of fixint and uint8", base.with(hData, "94 01 cc 80 cc ff 7f"),
			func(r *PluginRequest) { r.Data = []byte{1, 128, 255, 127} }},
		{"data as array of other int widths", base.with(hData, "94 cd 00 01 ce 00 00 00 02 d0 03 d3 00 00 00 00 00 00 00 ff"),
			func(r *PluginRequest) { r.Data = []byte{1, 2, 3, 255} }},
		{"data empty array", base.with(hData, "90"), func(r *PluginRequest) { r.Data = nil }},
		{"data bin16", base.with(hData, "c5 00 03 01 02 03"), nil},
		{"data bin32", base.with(hData, "c6 00 00 00 03 01 02 03"), nil},
		{"session_id u32::MAX as uint32", base.with(hSessionID, "ce ff ff ff ff"),
			func(r *PluginRequest) { r.SessionID = 1<<32 - 1 }},
		{"session_id u32::MAX as uint64", base.with(hSessionID, "cf 00 00 00 00 ff ff ff ff"),
			func(r *PluginRequest) { r.SessionID = 1<<32 - 1 }},
		{"session_id u32::MAX as int64", base.with(hSessionID, "d3 00 00 00 00 ff ff ff ff"),
			func(r *PluginRequest) { r.SessionID = 1<<32 - 1 }},
		{"timestamp u64::MAX", base.with(hTimestamp, "cf ff ff ff ff ff ff ff ff"),
			func(r *PluginRequest) { r.Timestamp = 1<<64 - 1 }},
		{"timestamp missing", base.without(hTimestamp), func(r *PluginRequest) { r.Timestamp = 0 }},
		{"method u32::MAX", base.with(hMethod, "ce ff ff ff ff"), func(r *PluginRequest) { r.Method = 1<<32 - 1 }},
		{"phase 0", base.with(hPhase, "00"), func(r *PluginRequest) { r.Phase = PhaseEvent }},
		{"phase 4 as int8", base.with(hPhase, "d0 04"), func(r *PluginRequest) { r.Phase = PhaseLogging }},
		{"version 2: newer, still readable", base.with(hVersion, "02"), func(r *PluginRequest) { r.Version = 2 }},
	}
	// The version in every integer width.
	for _, v := range []string{"cc 01", "cd 00 01", "ce 00 00 00 01", "cf 00 00 00 00 00 00 00 01",
		"d0 01", "d1 00 01", "d2 00 00 00 01", "d3 00 00 00 00 00 00 00 01"} {
		cases = append(cases, struct {
			name string
			in   hexFields
			edit func(*PluginRequest)
		}{"version 1 as " + v, base.with(hVersion, v), nil})
	}
	// A newer peer's field of any type, before and after the known ones.
	for name, v := range hUnknownValues {
		in := append(hexFields{{"a5 74 72 61 63 65", v}}, base...) // "trace"
		in = append(in, [2]string{"a4 7a 7a 7a 7a", v})            // "zzzz"
		cases = append(cases, struct {
			name string
			in   hexFields
			edit func(*PluginRequest)
		}{"unknown key: " + name, in, nil})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := want
			if tc.edit != nil {
				tc.edit(&w)
			}
			var got PluginRequest
			if err := DecodeRequest(tc.in.msg(t), &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, w)
			if got.Newer() != (got.Version > 1) {
				t.Fatalf("version %d: Newer() = %v", got.Version, got.Newer())
			}
		})
	}
}

func TestRmpRequestRejected(t *testing.T) {
	base := rmpRequest()
	seq16 := "dc 00 10 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
	for _, tc := range []struct {
		name  string
		in    hexFields
		field string
		is    error
	}{
		// request_id is a u128: rmp-serde writes bin8 of 16 bytes and reads
		// nothing else of 16 bytes (its FixArray path needs 16 elements,
		// which a fixarray cannot hold), so the byte-field leniency of
		// `data` (array of ints, nil) does not apply.
		{"request_id 15 bytes", base.with(hRequestID, "c4 0f 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e"), "request_id", nil},
		{"request_id 17 bytes", base.with(hRequestID, "c4 11 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10"), "request_id", nil},
		{"request_id as str of 16 bytes", base.with(hRequestID, "b0 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"), "request_id", nil},
		{"request_id as array of 16 ints", base.with(hRequestID, seq16), "request_id", nil},
		{"request_id nil", base.with(hRequestID, "c0"), "request_id", nil},
		{"request_id as int", base.with(hRequestID, "01"), "request_id", nil},
		{"session_id 2^32", base.with(hSessionID, "cf 00 00 00 01 00 00 00 00"), "session_id", errOverflow},
		{"session_id negative fixint", base.with(hSessionID, "ff"), "session_id", errNegative},
		{"session_id int8 -128", base.with(hSessionID, "d0 80"), "session_id", errNegative},
		{"session_id int64 -1", base.with(hSessionID, "d3 ff ff ff ff ff ff ff ff"), "session_id", errNegative},
		{"session_id u64::MAX", base.with(hSessionID, "cf ff ff ff ff ff ff ff ff"), "session_id", errOverflow},
		{"session_id float", base.with(hSessionID, "ca 43 96 00 00"), "session_id", nil},
		{"method 2^32", base.with(hMethod, "cf 00 00 00 01 00 00 00 00"), "method", errOverflow},
		{"method negative", base.with(hMethod, "d1 ff 38"), "method", errNegative},
		{"timestamp negative", base.with(hTimestamp, "d3 ff ff fe 74 30 1a 98 00"), "timestamp", errNegative},
		{"phase 5", base.with(hPhase, "05"), "phase", nil},
		{"phase 256 (not a u8)", base.with(hPhase, "cd 01 00"), "phase", nil},
		{"phase negative", base.with(hPhase, "ff"), "phase", errNegative},
		{"data byte 256", base.with(hData, "92 01 cd 01 00"), "data", errOverflow},
		{"data byte -1", base.with(hData, "92 01 ff"), "data", errNegative},
		{"data byte int8 -1", base.with(hData, "91 d0 ff"), "data", errNegative},
		{"data as str", base.with(hData, "a3 01 02 03"), "data", nil},
		{"data as ext", base.with(hData, "d4 01 02"), "data", nil},
		{"version 0", base.with(hVersion, "00"), "version", ErrUnsupportedVersion},
		{"version 3", base.with(hVersion, "03"), "version", ErrUnsupportedVersion},
		{"version u16::MAX", base.with(hVersion, "cd ff ff"), "version", ErrUnsupportedVersion},
		{"version above u16", base.with(hVersion, "ce 00 01 00 01"), "version", ErrUnsupportedVersion},
		{"version missing", base.without(hVersion), "version", ErrUnsupportedVersion},
		{"version negative", base.with(hVersion, "ff"), "version", errNegative},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got PluginRequest
			checkDecodeError(t, DecodeRequest(tc.in.msg(t), &got), tc.field, tc.is)
		})
	}
}

func TestRmpResponse(t *testing.T) {
	base := rmpResponse()
	want := goldenResponse()
	for _, tc := range []struct {
		name string
		in   hexFields
		edit func(*PluginResponse)
	}{
		{"as rmp_serde writes it", base, nil},
		{"action Next", base.with(hAction, "a4 4e 65 78 74"), func(r *PluginResponse) { r.Action = ActionNext }},
		{"action Error with error", base.with(hAction, "a5 45 72 72 6f 72").with(hError, "a4 62 6f 6f 6d"),
			func(r *PluginResponse) { r.Action, r.Error = ActionError, "boom" }},
		{"error missing (Option)", base.without(hError), nil},
		{"data missing", base.without(hData), func(r *PluginResponse) { r.Data = nil }},
		{"data nil", base.with(hData, "c0"), func(r *PluginResponse) { r.Data = nil }},
		{"data as the seed's Vec<u8>", base.with(hData, "91 cc 90"), nil},
		{"unknown keys of every kind", append(hexFields{{"a1 78", hUnknownValues["nested map and array"]}},
			base.with("a1 79", hUnknownValues["timestamp ext"])...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := want
			if tc.edit != nil {
				tc.edit(&w)
			}
			var got PluginResponse
			if err := DecodeResponse(tc.in.msg(t), &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, w)
		})
	}

	for _, tc := range []struct {
		name string
		in   hexFields
	}{
		// The seed's ResponseAction has unit variants only, which
		// rmp-serde writes as the bare name; the externally tagged map
		// form ({"Error": ...}) is what it writes for variants with data,
		// which v1 does not have. DESIGN: action is the bare string.
		{"action as a one-entry map", base.with(hAction, "81 a5 45 72 72 6f 72 c0")},
		{"action as a map with data", base.with(hAction, "81 a5 45 72 72 6f 72 a4 62 6f 6f 6d")},
		{"action as variant index", base.with(hAction, "02")},
		{"action lower case", base.with(hAction, "a3 65 6e 64")},
		{"action as bin", base.with(hAction, "c4 03 45 6e 64")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got PluginResponse
			checkDecodeError(t, DecodeResponse(tc.in.msg(t), &got), "action", nil)
		})
	}
}

// Op fields as rmp_serde writes them.
const (
	hOp    = "a2 6f 70"
	hKey   = "a3 6b 65 79"
	hValue = "a5 76 61 6c 75 65"
	hNum   = "a3 6e 75 6d"
)

func rmpOps(t testing.TB, ops ...hexFields) []byte {
	b := []byte{0x90 | byte(len(ops))}
	for _, op := range ops {
		b = append(b, op.msg(t)...)
	}
	return b
}

func TestRmpOps(t *testing.T) {
	op := hexFields{{hOp, "64"}, {hKey, "a1 6b"}, {hValue, "c4 01 76"}, {hNum, "ff"}}
	want := Op{Code: OpSetResponseHeader, Key: "k", Value: []byte("v"), Num: -1}
	for _, tc := range []struct {
		name string
		in   hexFields
		want Op
	}{
		{"as rmp_serde writes it", op, want},
		{"value as the seed's Vec<u8>", op.with(hValue, "91 76"), want},
		{"value nil and key missing", op.without(hKey).with(hValue, "c0"), Op{Code: OpSetResponseHeader, Num: -1}},
		{"op as uint64, num as int64", op.with(hOp, "cf 00 00 00 00 00 00 00 64").with(hNum, "d3 ff ff ff ff ff ff ff ff"), want},
		{"unknown key", op.with("a3 74 74 6c", hUnknownValues["map16 of ext values"]), want},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeOps(rmpOps(t, tc.in), nil)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, []Op{tc.want})
		})
	}
	for _, tc := range []struct {
		name  string
		in    hexFields
		field string
		is    error
	}{
		{"op negative", op.with(hOp, "ff"), "data[0].op", errNegative},
		{"op 2^32", op.with(hOp, "cf 00 00 00 01 00 00 00 00"), "data[0].op", errOverflow},
		{"num 2^63", op.with(hNum, "cf 80 00 00 00 00 00 00 00"), "data[0].num", errOverflow},
		{"value byte 256", op.with(hValue, "91 cd 01 00"), "data[0].value", errOverflow},
		{"value byte -1", op.with(hValue, "91 ff"), "data[0].value", errNegative},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeOps(rmpOps(t, tc.in), nil)
			checkDecodeError(t, err, tc.field, tc.is)
		})
	}
}

func TestRmpInvocation(t *testing.T) {
	// The smallest invocation a peer can send: an empty request and
	// nothing else (Option parts and config missing).
	req := "a7 72 65 71 75 65 73 74 80"  // "request": {}
	resp := "a8 72 65 73 70 6f 6e 73 65" // "response"
	ws := "a2 77 73"
	in := func(parts ...string) []byte {
		return parseHex(t, "8"+string("0123456789"[len(parts)])+" "+strings.Join(parts, " "))
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want Invocation
	}{
		{"request only", in(req), Invocation{}},
		{"response and ws None", in(req, resp+" c0", ws+" c0"), Invocation{}},
		{"response with wide ints and unknown keys", in(req, resp+
			" 84 a6 73 74 61 74 75 73 d1 01 f6"+ // "status": int16 502
			" ab 64 75 72 61 74 69 6f 6e 5f 6d 73 cf 00 00 00 00 00 01 11 70"+ // "duration_ms": uint64 70000
			" a1 78 "+hUnknownValues["ext16 and ext32"]+
			" a5 65 72 72 6f 72 c0"), // "error": None
			Invocation{Response: &HTTPResponse{Status: 502, DurationMs: 70000}}},
		{"ws close with uint16 code", in(req, ws+
			" 83 a4 6b 69 6e 64 a5 63 6c 6f 73 65"+ // "kind": "close"
			" aa 63 6c 6f 73 65 5f 63 6f 64 65 cd 03 e9"+ // "close_code": 1001
			" a7 70 61 79 6c 6f 61 64 92 68 69"), // "payload": [104, 105]
			Invocation{WS: &WSEvent{Kind: WSClose, CloseCode: 1001, Payload: []byte("hi")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Invocation
			if err := DecodeInvocation(tc.in, &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.want)
		})
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		field string
		is    error
	}{
		{"status 65536", in(req, resp+" 81 a6 73 74 61 74 75 73 ce 00 01 00 00"), "data.response.status", errOverflow},
		{"status negative", in(req, resp+" 81 a6 73 74 61 74 75 73 d1 fe 0c"), "data.response.status", errNegative},
		{"close_code 65536", in(req, ws+" 81 aa 63 6c 6f 73 65 5f 63 6f 64 65 ce 00 01 00 00"), "data.ws.close_code", errOverflow},
		{"last_chunk as int", in(req, resp+" 81 aa 6c 61 73 74 5f 63 68 75 6e 6b 01"), "data.response.last_chunk", nil},
		{"body byte 256", in("a7 72 65 71 75 65 73 74 81 a4 62 6f 64 79 91 cd 01 00"), "data.request.body", errOverflow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Invocation
			checkDecodeError(t, DecodeInvocation(tc.in, &got), tc.field, tc.is)
		})
	}
}

// TestWireNumbers pins the numbers DESIGN.md fixes (phases, op codes) and
// the read methods of the Nylon SDK's method table that the guest ABI
// reuses.
func TestWireNumbers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uint32
	}{
		{"phase events", uint32(PhaseEvent), 0},
		{"phase request_filter", uint32(PhaseRequestFilter), 1},
		{"phase response_filter", uint32(PhaseResponseFilter), 2},
		{"phase response_body_filter", uint32(PhaseResponseBodyFilter), 3},
		{"phase logging", uint32(PhaseLogging), 4},

		{"NEXT", MethodNext, 1},
		{"END", MethodEnd, 2},
		{"GET_PAYLOAD", MethodGetPayload, 3},
		{"SET_RESPONSE_HEADER", OpSetResponseHeader, 100},
		{"REMOVE_RESPONSE_HEADER", OpRemoveResponseHeader, 101},
		{"SET_RESPONSE_STATUS", OpSetResponseStatus, 102},
		{"SET_RESPONSE_FULL_BODY", OpSetResponseBody, 103},
		{"SET_RESPONSE_STREAM_DATA", OpSetStreamData, 104},
		{"SET_RESPONSE_STREAM_END", OpSetStreamEnd, 105},
		{"SET_RESPONSE_STREAM_HEADER", OpSetStreamHeader, 106},
		{"READ_RESPONSE_FULL_BODY", ReadResponseFullBody, 107},
		{"READ_RESPONSE_STATUS", ReadResponseStatus, 108},
		{"READ_RESPONSE_BYTES", ReadResponseBytes, 109},
		{"READ_RESPONSE_HEADERS", ReadResponseHeaders, 110},
		{"READ_RESPONSE_DURATION", ReadResponseDuration, 111},
		{"READ_RESPONSE_ERROR", ReadResponseError, 112},
		{"READ_REQUEST_FULL_BODY", ReadRequestFullBody, 200},
		{"READ_REQUEST_HEADER", ReadRequestHeader, 201},
		{"READ_REQUEST_HEADERS", ReadRequestHeaders, 202},
		{"READ_REQUEST_URL", ReadRequestURL, 203},
		{"READ_REQUEST_PATH", ReadRequestPath, 204},
		{"READ_REQUEST_QUERY", ReadRequestQuery, 205},
		{"READ_REQUEST_PARAMS", ReadRequestParams, 206},
		{"READ_REQUEST_HOST", ReadRequestHost, 207},
		{"READ_REQUEST_CLIENT_IP", ReadRequestClientIP, 208},
		{"READ_REQUEST_METHOD", ReadRequestMethod, 209},
		{"READ_REQUEST_BYTES", ReadRequestBytes, 210},
		{"READ_REQUEST_TIMESTAMP", ReadRequestTimestamp, 211},
		{"WEBSOCKET_SEND_TEXT", OpWSSendText, 301},
		{"WEBSOCKET_SEND_BINARY", OpWSSendBinary, 302},
		{"WEBSOCKET_CLOSE", OpWSClose, 303},
		{"WEBSOCKET_JOIN_ROOM", OpWSJoinRoom, 310},
		{"WEBSOCKET_LEAVE_ROOM", OpWSLeaveRoom, 311},
		{"WEBSOCKET_BROADCAST_ROOM_TEXT", OpWSBroadcastText, 312},
		{"WEBSOCKET_BROADCAST_ROOM_BINARY", OpWSBroadcastBinary, 313},
		{"WEBSOCKET_ON_OPEN", EventWSOpen, 350},
		{"WEBSOCKET_ON_MESSAGE_TEXT", EventWSText, 351},
		{"WEBSOCKET_ON_MESSAGE_BINARY", EventWSBinary, 352},
		{"WEBSOCKET_ON_CLOSE", EventWSClose, 353},

		// The platform's own writes (not in the SDK's table).
		{"set request header", OpSetRequestHeader, 400},
		{"remove request header", OpRemoveRequestHeader, 401},
		{"add response header", OpAddResponseHeader, 402},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	// The platform's own ops have numbers outside the SDK's ranges.
	inSDKTable := func(code uint32) bool {
		return (code >= 100 && code <= 112) || (code >= 200 && code <= 211) || (code >= 300 && code <= 354)
	}
	for _, code := range []uint32{OpSetRequestHeader, OpRemoveRequestHeader, OpAddResponseHeader} {
		if inSDKTable(code) || IsWSOp(code) {
			t.Errorf("platform op %d collides with the SDK's table", code)
		}
	}
	for _, code := range []uint32{OpSetRequestHeader, OpRemoveRequestHeader} {
		if IsResponseOp(code) || IsResponseHeaderOp(code) || !IsRequestHeaderOp(code) {
			t.Errorf("request-header op %d classified as a response op", code)
		}
	}
}

// TestOpClasses pins which class each write op is in: the node's ABI
// allows ops by class and phase, and the gateway applies them by class.
func TestOpClasses(t *testing.T) {
	for code := uint32(0); code < 1000; code++ {
		var want [4]bool // response, response header, request header, ws
		switch code {
		case OpSetResponseHeader, OpRemoveResponseHeader, OpAddResponseHeader:
			want = [4]bool{true, true, false, false}
		case OpSetResponseStatus, OpSetResponseBody, OpSetStreamData, OpSetStreamEnd, OpSetStreamHeader:
			want = [4]bool{true, false, false, false}
		case OpSetRequestHeader, OpRemoveRequestHeader:
			want = [4]bool{false, false, true, false}
		case OpWSSendText, OpWSSendBinary, OpWSClose, OpWSJoinRoom, OpWSLeaveRoom, OpWSBroadcastText, OpWSBroadcastBinary:
			want = [4]bool{false, false, false, true}
		}
		got := [4]bool{IsResponseOp(code), IsResponseHeaderOp(code), IsRequestHeaderOp(code), IsWSOp(code)}
		// 304-309 sit inside the WebSocket write range without a method:
		// IsWSOp is a range check, and the ABI refuses them as unknown.
		if code > OpWSClose && code < OpWSJoinRoom {
			want[3] = true
		}
		if got != want {
			t.Errorf("op %d: IsResponseOp, IsResponseHeaderOp, IsRequestHeaderOp, IsWSOp = %v, want %v", code, got, want)
		}
	}
}

// TestEncodeTextIsUTF8: msgpack's str is UTF-8 text, and rmp-serde refuses
// a str that is not valid UTF-8 when it reads a String (Utf8Error: the
// whole PluginResponse fails to decode). A handler's error text is whatever
// bytes the guest wrote, so the encoder must not pass invalid UTF-8 through
// to a Rust caller: it writes U+FFFD instead. Op keys get the same rule.
func TestEncodeTextIsUTF8(t *testing.T) {
	resp := PluginResponse{Version: Version, Action: ActionError, Error: "bad \xff\xfe text"}
	got := resp.AppendMsgpack(nil)
	// "error": fixstr(12) "bad " EF BF BD " text"
	want := parseHex(t, hError+" ac 62 61 64 20 ef bf bd 20 74 65 78 74")
	if !bytes.HasSuffix(got, want) {
		t.Fatalf("error encoded as\n% x\nwant it to end in\n% x", got, want)
	}

	ops := AppendOps(nil, []Op{{Code: OpWSJoinRoom, Key: "k\xc3"}, {Code: OpWSLeaveRoom, Key: "é日本"}})
	for _, w := range []string{
		hKey + " a4 6b ef bf bd",             // "k" U+FFFD: the truncated sequence replaced
		hKey + " a8 c3 a9 e6 97 a5 e6 9c ac", // valid UTF-8 unchanged
	} {
		if !bytes.Contains(ops, parseHex(t, w)) {
			t.Errorf("ops\n% x\ndo not contain %s", ops, w)
		}
	}

	// Valid text is written as is (the common case costs no copy).
	ok := PluginResponse{Version: Version, Action: ActionError, Error: "naïve ✓"}
	var back PluginResponse
	if err := DecodeResponse(ok.AppendMsgpack(nil), &back); err != nil || back.Error != ok.Error {
		t.Fatalf("valid UTF-8 error came back as %q, %v", back.Error, err)
	}
}
