package protocol

import (
	"bytes"
	"runtime"
	"testing"
)

func requestMapFields() []field {
	return []field{
		{"method", mStr("GET")},
		{"scheme", mStr("https")},
		{"host", mStr("example.com")},
		{"path", mStr("/users/42")},
		{"query", mStr("a=1")},
		{"client_ip", mStr("127.0.0.1")},
		{"headers", cat(mArray(2), mArray(2), mStr("host"), mStr("example.com"), mArray(2), mStr("accept"), mStr("*/*"))},
		{"body", mBin([]byte("hi"))},
		{"params", mMap(field{"id", mStr("42")})},
		{"timestamp", mUint(1700000000000)},
	}
}

func responseMapFields() []field {
	return []field{
		{"status", mUint(200)},
		{"headers", cat(mArray(1), mArray(2), mStr("content-type"), mStr("text/plain"))},
		{"body", mBin([]byte("ok"))},
		{"chunk_index", mUint(0)},
		{"last_chunk", mBytes(mpTrue)},
		{"duration_ms", mUint(12)},
		{"error", mNil()},
	}
}

func wsMapFields() []field {
	return []field{
		{"kind", mStr("text")},
		{"connection_id", mStr("c1")},
		{"payload", mBin([]byte("hey"))},
		{"close_code", mUint(0)},
		{"close_reason", mStr("")},
	}
}

func invocationFields(req, resp, ws []field) []field {
	f := []field{{"request", mMap(req...)}, {"response", mNil()}, {"ws", mNil()}, {"config", mMap(field{"mode", mStr("strict")})}}
	if resp != nil {
		f[1].val = mMap(resp...)
	}
	if ws != nil {
		f[2].val = mMap(ws...)
	}
	return f
}

func invocationErrorCases() []decodeCase {
	rq, rs, ws := requestMapFields(), responseMapFields(), wsMapFields()
	inv := func(req, resp, w []field) []byte { return mMap(invocationFields(req, resp, w)...) }
	return []decodeCase{
		{"empty", nil, "data", errTruncated},
		{"not a map", mStr("x"), "data", nil},
		{"trailing", cat(inv(rq, nil, nil), mBytes(0)), "data", nil},
		{"huge map32", mRaw("dfffffffff"), "data", errLength},
		{"request not map", mMap(field{"request", mArray(0)}), "data.request", nil},
		{"method int", inv(set(rq, "method", mUint(1)), nil, nil), "data.request.method", nil},
		{"path truncated str16", inv(set(rq, "path", mRaw("da0100")), nil, nil), "data.request.path", errTruncated},
		{"headers not array", inv(set(rq, "headers", mMap()), nil, nil), "data.request.headers", nil},
		{"headers huge array32", inv(set(rq, "headers", mRaw("ddffffffff")), nil, nil), "data.request.headers", errLength},
		{"header 3 not a pair", inv(set(rq, "headers", cat(mArray(4),
			mArray(2), mStr("a"), mStr("1"), mArray(2), mStr("b"), mStr("2"), mArray(2), mStr("c"), mStr("3"),
			mArray(3), mStr("d"), mStr("4"), mStr("5"))), nil, nil), "data.request.headers[3]", nil},
		{"header 0 value int", inv(set(rq, "headers", cat(mArray(1), mArray(2), mStr("a"), mUint(1))), nil, nil), "data.request.headers[0]", nil},
		{"header 0 is a map", inv(set(rq, "headers", cat(mArray(1), mMap(field{"name", mStr("a")}))), nil, nil), "data.request.headers[0]", nil},
		{"body str", inv(set(rq, "body", mStr("hi")), nil, nil), "data.request.body", nil},
		{"body byte 300", inv(set(rq, "body", cat(mArray(1), mUint(300))), nil, nil), "data.request.body", errOverflow},
		{"params array", inv(set(rq, "params", mArray(0)), nil, nil), "data.request.params", nil},
		{"params int key", inv(set(rq, "params", cat(mBytes(0x81), mUint(1), mStr("x"))), nil, nil), "data.request.params[0]", nil},
		{"params huge map32", inv(set(rq, "params", mRaw("dfffffffff")), nil, nil), "data.request.params", errLength},
		{"timestamp negative", inv(set(rq, "timestamp", mInt(-1)), nil, nil), "data.request.timestamp", errNegative},
		{"request unknown key truncated", inv(set(rq, "extra", mRaw("c4ff")), nil, nil), "data.request.extra", nil},
		{"response not map", mMap(field{"response", mStr("x")}), "data.response", nil},
		{"status negative", inv(rq, set(rs, "status", mInt(-200)), nil), "data.response.status", errNegative},
		{"status 70000", inv(rq, set(rs, "status", mUint(70000)), nil), "data.response.status", errOverflow},
		{"chunk_index 2^32", inv(rq, set(rs, "chunk_index", mUint(1<<32)), nil), "data.response.chunk_index", errOverflow},
		{"last_chunk int", inv(rq, set(rs, "last_chunk", mUint(1)), nil), "data.response.last_chunk", nil},
		{"response header 0 truncated", inv(rq, set(rs, "headers", cat(mArray(1), mArray(2), mStr("a"), mBytes(0xc1))), nil), "data.response.headers[0]", nil},
		{"duration negative", inv(rq, set(rs, "duration_ms", mInt(-3)), nil), "data.response.duration_ms", errNegative},
		{"response error int", inv(rq, set(rs, "error", mUint(3)), nil), "data.response.error", nil},
		{"ws not map", mMap(field{"ws", mArray(0)}), "data.ws", nil},
		{"ws kind int", inv(rq, nil, set(ws, "kind", mUint(1))), "data.ws.kind", nil},
		{"ws close_code 65536", inv(rq, nil, set(ws, "close_code", mUint(65536))), "data.ws.close_code", errOverflow},
		{"ws payload map", inv(rq, nil, set(ws, "payload", mMap())), "data.ws.payload", nil},
		{"config value int", mMap(field{"config", mMap(field{"a", mStr("1")}, field{"b", mUint(2)})}), "data.config[1]", nil},
		{"config array", mMap(field{"config", mArray(0)}), "data.config", nil},
		{"unknown top key truncated", mMap(field{"extra", mRaw("dc0005")}), "data.extra", errLength},
	}
}

func TestDecodeInvocationErrors(t *testing.T) {
	for _, tc := range invocationErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			var v Invocation
			checkDecodeError(t, DecodeInvocation(tc.in, &v), tc.field, tc.is)
		})
	}
}

func TestDecodeInvocationLenient(t *testing.T) {
	rq, rs, ws := requestMapFields(), responseMapFields(), wsMapFields()
	full := goldenInvocation()
	wsOnly := goldenInvocation()
	wsOnly.Response = nil
	wsOnly.WS = goldenInvocationWS().WS
	var unknown []field
	for name, v := range unknownValues() {
		unknown = append(unknown, field{"x_" + name, v})
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want Invocation
	}{
		{"golden fields", mMap(invocationFields(rq, rs, nil)...), full},
		{"ws event", mMap(invocationFields(rq, nil, ws)...), wsOnly},
		{"empty map", mMap(), Invocation{}},
		{"nil top", mNil(), Invocation{}},
		{"only request with nils", mMap(field{"request", mMap(
			field{"method", mNil()}, field{"headers", mNil()}, field{"body", mNil()}, field{"params", mNil()})}), Invocation{}},
		{"nil config and parts", mMap(field{"config", mNil()}, field{"response", mNil()}, field{"ws", mNil()}, field{"request", mNil()}), Invocation{}},
		{"unknown keys everywhere", mMap(append(invocationFields(append(rq, unknown...), append(rs, unknown...), nil), unknown...)...), full},
		{"status as uint16 and int8", mMap(invocationFields(rq, set(rs, "status", mRaw("cd00c8")), nil)...), full},
		{"body as int array", mMap(invocationFields(set(rq, "body", cat(mArray(2), mUint('h'), mUint('i'))), rs, nil)...), full},
		{"nil header strings", mMap(field{"request", mMap(field{"headers", cat(mArray(1), mArray(2), mStr("a"), mNil())})}),
			Invocation{Request: HTTPRequest{Headers: []Header{{"a", ""}}}}},
		{"unknown ws kind kept", mMap(field{"ws", mMap(field{"kind", mStr("ping")})}),
			Invocation{WS: &WSEvent{Kind: "ping"}}},
		{"missing response keys", mMap(field{"response", mMap(field{"status", mUint(204)})}),
			Invocation{Response: &HTTPResponse{Status: 204}}},
		{"response error str", mMap(field{"response", mMap(field{"error", mStr("upstream reset")})}),
			Invocation{Response: &HTTPResponse{Error: "upstream reset"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Invocation
			if err := DecodeInvocation(tc.in, &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.want)
			// What decodes re-encodes and decodes to the same value.
			var again Invocation
			if err := DecodeInvocation(AppendInvocation(nil, &got), &again); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, again, got)
		})
	}
}

// TestDecodeInvocationPooled decodes different messages into one Invocation:
// every field must be overwritten, slices' capacity and the part structs
// reused, and the strings must not alias the input.
func TestDecodeInvocationPooled(t *testing.T) {
	big := benchInvocation()
	big.Response = &HTTPResponse{Status: 500, Headers: []Header{{"a", "b"}}, Body: []byte("body"), Error: "x"}
	big.WS = &WSEvent{Kind: WSClose, CloseCode: 1001, Payload: []byte("p")}
	big.Request.Params = []KV{{"a", "1"}, {"b", "2"}}
	bigB := AppendInvocation(nil, &big)

	var inv Invocation
	if err := DecodeInvocation(bigB, &inv); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, inv, big)
	hdrs, body, resp, ws := &inv.Request.Headers[0], &inv.Request.Body[0], inv.Response, inv.WS

	// A smaller message without response or ws: old values must not leak.
	small := goldenInvocation()
	small.Response = nil
	smallB := AppendInvocation(nil, &small)
	if err := DecodeInvocation(smallB, &inv); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, inv, small)
	if &inv.Request.Headers[0] != hdrs || &inv.Request.Body[0] != body {
		t.Error("headers or body capacity not reused")
	}

	// Decoding into an Invocation that still holds its parts reuses them.
	inv.Response, inv.WS = resp, ws
	if err := DecodeInvocation(bigB, &inv); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, inv, big)
	if inv.Response != resp || inv.WS != ws {
		t.Error("Response or WS struct not reused")
	}

	// Strings and bytes are copies: scribbling over the input changes nothing.
	in := append([]byte(nil), bigB...)
	var own Invocation
	if err := DecodeInvocation(in, &own); err != nil {
		t.Fatal(err)
	}
	clear(in)
	mustEqual(t, own, big)

	// A warm pooled decode of the benchmark context costs one allocation:
	// the string chunk.
	allocs := testing.AllocsPerRun(100, func() {
		if err := DecodeInvocation(bigB, &inv); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("pooled DecodeInvocation allocates %.0f times, want at most 1", allocs)
	}
	buf := make([]byte, 0, 4096)
	allocs = testing.AllocsPerRun(100, func() { buf = AppendInvocation(buf[:0], &big) })
	if allocs != 0 {
		t.Errorf("AppendInvocation into a large enough buffer allocates %.0f times", allocs)
	}
}

// TestHugeClaimsDoNotAllocate feeds headers that claim up to 2^32 elements or
// bytes: decoding must fail without reserving memory for the claim.
func TestHugeClaimsDoNotAllocate(t *testing.T) {
	rq := requestMapFields()
	inputs := [][]byte{
		mRaw("dfffffffff"),
		mRaw("ddffffffff"),
		mMap(field{"request", mMap(set(rq, "headers", mRaw("ddffffffff"))...)}),
		mMap(field{"request", mMap(set(rq, "headers", cat(mRaw("dd0000ffff"), make([]byte, 70000)))...)}),
		mMap(field{"request", mMap(set(rq, "body", mRaw("c6ffffffff"))...)}),
		mMap(field{"request", mMap(set(rq, "body", mRaw("ddffffffff"))...)}),
		mMap(field{"request", mMap(set(rq, "path", mRaw("dbffffffff"))...)}),
		mMap(field{"request", mMap(set(rq, "params", mRaw("dfffffffff"))...)}),
		mMap(field{"config", cat(mRaw("df00008000"), make([]byte, 70000))}),
		mMap(field{"x", cat(mRaw("c9ffffffff01"))}),
		mMap(field{"x", repeat(mRaw("ddffffffff"), 1000)}),
		cat(mRaw("dc0400"), make([]byte, 1024)),
		mMap(set(requestFields(), "data", mRaw("ddffffffff"))...),
	}
	decoders := []func([]byte) error{
		func(b []byte) error { var v Invocation; return DecodeInvocation(b, &v) },
		func(b []byte) error { var r PluginRequest; return DecodeRequest(b, &r) },
		func(b []byte) error { var r PluginResponse; return DecodeResponse(b, &r) },
		func(b []byte) error { _, err := DecodeOps(b, nil); return err },
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, in := range inputs {
		for _, dec := range decoders {
			if err := dec(in); err == nil {
				t.Fatalf("decoded % x without error", in[:min(len(in), 16)])
			}
		}
	}
	runtime.ReadMemStats(&after)
	// Errors allocate a little; a claim honoured would be gigabytes.
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("decoding forged lengths allocated %d bytes", n)
	}
}

func TestAppendInvocationGrowsOnce(t *testing.T) {
	inv := benchInvocation()
	inv.Response = goldenInvocation().Response
	inv.WS = goldenInvocationWS().WS
	if allocs := testing.AllocsPerRun(50, func() { _ = AppendInvocation(nil, &inv) }); allocs != 1 {
		t.Errorf("AppendInvocation(nil) allocates %.0f times, want 1", allocs)
	}
	prefix := []byte("prefix")
	b := AppendInvocation(prefix, &inv)
	if !bytes.HasPrefix(b, prefix) {
		t.Fatal("AppendInvocation lost the existing bytes")
	}
	var got Invocation
	if err := DecodeInvocation(b[len(prefix):], &got); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, inv)
}
