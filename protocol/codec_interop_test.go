package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Reflective msgpack/v5 mirrors of the wire types, tagged with the wire keys:
// what a Go peer not using this package would write. The benchmarks use
// them as the baseline.

type refRequest struct {
	Version   uint16 `msgpack:"version"`
	RequestID []byte `msgpack:"request_id"`
	SessionID uint32 `msgpack:"session_id"`
	Phase     uint8  `msgpack:"phase"`
	Method    uint32 `msgpack:"method"`
	Data      []byte `msgpack:"data"`
	Timestamp uint64 `msgpack:"timestamp"`
}

type refResponse struct {
	Version   uint16  `msgpack:"version"`
	RequestID []byte  `msgpack:"request_id"`
	SessionID uint32  `msgpack:"session_id"`
	Action    string  `msgpack:"action"`
	Data      []byte  `msgpack:"data"`
	Error     *string `msgpack:"error"`
}

type refInvocation struct {
	Request  refHTTPRequest    `msgpack:"request"`
	Response *refHTTPResponse  `msgpack:"response"`
	WS       *refWSEvent       `msgpack:"ws"`
	Config   map[string]string `msgpack:"config"`
}

type refHTTPRequest struct {
	Method    string            `msgpack:"method"`
	Scheme    string            `msgpack:"scheme"`
	Host      string            `msgpack:"host"`
	Path      string            `msgpack:"path"`
	Query     string            `msgpack:"query"`
	ClientIP  string            `msgpack:"client_ip"`
	Headers   [][2]string       `msgpack:"headers"`
	Body      []byte            `msgpack:"body"`
	Params    map[string]string `msgpack:"params"`
	Timestamp uint64            `msgpack:"timestamp"`
}

type refHTTPResponse struct {
	Status     uint16      `msgpack:"status"`
	Headers    [][2]string `msgpack:"headers"`
	Body       []byte      `msgpack:"body"`
	ChunkIndex uint32      `msgpack:"chunk_index"`
	LastChunk  bool        `msgpack:"last_chunk"`
	DurationMs uint64      `msgpack:"duration_ms"`
	Error      *string     `msgpack:"error"`
}

type refWSEvent struct {
	Kind         string `msgpack:"kind"`
	ConnectionID string `msgpack:"connection_id"`
	Payload      []byte `msgpack:"payload"`
	CloseCode    uint16 `msgpack:"close_code"`
	CloseReason  string `msgpack:"close_reason"`
}

type refOp struct {
	Op    uint32 `msgpack:"op"`
	Key   string `msgpack:"key"`
	Value []byte `msgpack:"value"`
	Num   int64  `msgpack:"num"`
}

func toRefRequest(r *PluginRequest) refRequest {
	return refRequest{r.Version, r.RequestID[:], r.SessionID, uint8(r.Phase), r.Method, r.Data, r.Timestamp}
}

func toRefHeaders(hs []Header) [][2]string {
	out := make([][2]string, len(hs))
	for i, h := range hs {
		out[i] = [2]string{h.Name, h.Value}
	}
	return out
}

func toRefMap(kvs []KV) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = kv.Value
	}
	return out
}

func toRefInvocation(inv *Invocation) refInvocation {
	q := &inv.Request
	out := refInvocation{
		Request: refHTTPRequest{q.Method, q.Scheme, q.Host, q.Path, q.Query, q.ClientIP,
			toRefHeaders(q.Headers), q.Body, toRefMap(q.Params), q.Timestamp},
		Config: toRefMap(inv.Config),
	}
	if s := inv.Response; s != nil {
		out.Response = &refHTTPResponse{uint16(s.Status), toRefHeaders(s.Headers), s.Body, s.ChunkIndex,
			s.LastChunk, s.DurationMs, nil}
		if s.Error != "" {
			out.Response.Error = &s.Error
		}
	}
	if w := inv.WS; w != nil {
		out.WS = &refWSEvent{string(w.Kind), w.ConnectionID, w.Payload, w.CloseCode, w.CloseReason}
	}
	return out
}

// TestInteropFromMsgpackMap: msgpack/v5 encoding a plain map (random key
// order, full-width ints for typed values) must decode with our readers.
func TestInteropFromMsgpackMap(t *testing.T) {
	m := map[string]any{
		"version":    uint16(1),
		"request_id": goldenID[:],
		"session_id": uint32(300),
		"phase":      uint8(1),
		"method":     uint32(200),
		"data":       []byte{1, 2, 3},
		"timestamp":  uint64(1700000000000),
		"extra":      map[string]any{"nested": []any{1.5, "x", nil, true}},
	}
	for _, compact := range []bool{false, true} {
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(compact)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		var got PluginRequest
		if err := DecodeRequest(buf.Bytes(), &got); err != nil {
			t.Fatalf("compact=%v: % x: %v", compact, buf.Bytes(), err)
		}
		mustEqual(t, got, goldenRequest())
	}

	resp, err := msgpack.Marshal(map[string]any{
		"version": 1, "request_id": goldenID[:], "session_id": 300, "action": "End",
		"data": []byte{0x90}, "error": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	var gotResp PluginResponse
	if err := DecodeResponse(resp, &gotResp); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, gotResp, goldenResponse())

	ops, err := msgpack.Marshal([]map[string]any{
		{"op": 100, "key": "content-type", "value": []byte("text/plain"), "num": 0},
		{"op": int64(102), "key": "", "value": []byte{}, "num": int16(404)},
		{"op": uint16(303), "key": "", "value": []byte("bye"), "num": 1000},
		{"op": 312, "key": "lobby", "value": []byte("hi"), "num": int8(1)},
		{"op": 401, "key": "x-debug", "value": nil, "num": -200},
	})
	if err != nil {
		t.Fatal(err)
	}
	gotOps, err := DecodeOps(ops, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, gotOps, goldenOps())
}

// TestInteropReflectiveStructs: both directions with tagged structs.
func TestInteropReflectiveStructs(t *testing.T) {
	inv := benchInvocation()
	inv.Response = goldenInvocation().Response
	inv.Response.Error = "reset"
	inv.WS = goldenInvocationWS().WS
	inv.Request.Params = []KV{{"id", "42"}} // maps have no order: keep one entry
	ref := toRefInvocation(&inv)

	// msgpack/v5 -> ours.
	b, err := msgpack.Marshal(&ref)
	if err != nil {
		t.Fatal(err)
	}
	var got Invocation
	if err := DecodeInvocation(b, &got); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, inv)

	// ours -> msgpack/v5.
	var back refInvocation
	if err := msgpack.Unmarshal(AppendInvocation(nil, &inv), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ref) {
		t.Fatalf("msgpack/v5 read\n%+v\nwant\n%+v", back, ref)
	}

	req := goldenRequest()
	var backReq refRequest
	if err := msgpack.Unmarshal(req.AppendMsgpack(nil), &backReq); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(backReq, toRefRequest(&req)) {
		t.Fatalf("msgpack/v5 read %+v", backReq)
	}
	var backResp refResponse
	errResp := goldenResponseError()
	if err := msgpack.Unmarshal(errResp.AppendMsgpack(nil), &backResp); err != nil {
		t.Fatal(err)
	}
	if backResp.Action != "Error" || backResp.Error == nil || *backResp.Error != "boom" || len(backResp.RequestID) != 16 {
		t.Fatalf("msgpack/v5 read %+v", backResp)
	}
	var backOps []refOp
	if err := msgpack.Unmarshal(AppendOps(nil, goldenOps()), &backOps); err != nil {
		t.Fatal(err)
	}
	if len(backOps) != 5 || backOps[4].Num != -200 || backOps[2].Op != 303 || string(backOps[0].Value) != "text/plain" {
		t.Fatalf("msgpack/v5 read %+v", backOps)
	}
}

// TestInteropToMsgpackMap: msgpack/v5 reads our output generically.
func TestInteropToMsgpackMap(t *testing.T) {
	req := goldenRequest()
	var m map[string]any
	if err := msgpack.Unmarshal(req.AppendMsgpack(nil), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"version": 1, "request_id": goldenID[:], "session_id": 300, "phase": 1,
		"method": 200, "data": []byte{1, 2, 3}, "timestamp": 1700000000000}
	if len(m) != len(want) {
		t.Fatalf("keys: %v", m)
	}
	for k, w := range want {
		if fmt.Sprint(m[k]) != fmt.Sprint(w) {
			t.Errorf("%s = %v (%T), want %v", k, m[k], m[k], w)
		}
	}
	if id, ok := m["request_id"].([]byte); !ok || len(id) != 16 {
		t.Errorf("request_id decoded as %T %v, want 16 bytes", m["request_id"], m["request_id"])
	}

	var r map[string]any
	resp := goldenResponse()
	if err := msgpack.Unmarshal(resp.AppendMsgpack(nil), &r); err != nil {
		t.Fatal(err)
	}
	if r["action"] != "End" || r["error"] != nil || !bytes.Equal(r["data"].([]byte), []byte{0x90}) {
		t.Fatalf("response read as %v", r)
	}

	inv := goldenInvocation()
	var im map[string]any
	if err := msgpack.Unmarshal(AppendInvocation(nil, &inv), &im); err != nil {
		t.Fatal(err)
	}
	hdrs := im["request"].(map[string]any)["headers"].([]any)
	if len(hdrs) != 2 || fmt.Sprint(hdrs[1]) != "[accept */*]" || im["ws"] != nil {
		t.Fatalf("invocation read as %v", im)
	}
}

// TestMsgpackCustomInterfaces: msgpack/v5 users get our exact bytes, for
// values, pointers and nested fields, and our decoder on the way back.
func TestMsgpackCustomInterfaces(t *testing.T) {
	req := goldenRequest()
	want := golden(t, "request")
	for name, v := range map[string]any{"value": req, "pointer": &req} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("msgpack.Marshal(%s) = % x\nwant % x", name, b, want)
		}
	}
	var got PluginRequest
	if err := msgpack.Unmarshal(want, &got); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, req)

	type envelope struct {
		Req  PluginRequest   `msgpack:"req"`
		Resp *PluginResponse `msgpack:"resp"`
	}
	resp := goldenResponse()
	b, err := msgpack.Marshal(envelope{Req: req, Resp: &resp})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, want) || !bytes.Contains(b, golden(t, "response")) {
		t.Fatalf("nested encoding does not embed our bytes: % x", b)
	}
	var back envelope
	if err := msgpack.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, back.Req, req)
	mustEqual(t, *back.Resp, resp)

	// Our errors come through msgpack.Unmarshal unchanged.
	bad := mMap(set(requestFields(), "version", mUint(3))...)
	err = msgpack.Unmarshal(bad, &got)
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("msgpack.Unmarshal error = %v, want our *DecodeError", err)
	}
}
