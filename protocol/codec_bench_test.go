package protocol

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The benchmarks use the context of DESIGN.md's speed note: an envelope plus
// an invocation with 10 headers and a 1 KiB body. Each compares the codec
// with reflective msgpack/v5 on equivalent tagged structs, in the same run:
//
//	go test ./protocol -run XXX -bench . -benchmem

func benchRequest() PluginRequest {
	return PluginRequest{Version: Version, RequestID: goldenID, SessionID: 42, Phase: PhaseRequestFilter,
		Method: 0, Timestamp: 1700000000000}
}

// BenchmarkRequestRoundTrip encodes a request with its invocation, then
// decodes both: what a caller and a node do per phase call.
func BenchmarkRequestRoundTrip(b *testing.B) {
	inv := benchInvocation()
	b.Run("codec-pooled", func(b *testing.B) {
		// Buffers and decoded values reused across calls, as a node with
		// a sync.Pool would.
		req := benchRequest()
		var invBuf, reqBuf []byte
		var gotReq PluginRequest
		var gotInv Invocation
		b.ReportAllocs()
		for b.Loop() {
			invBuf = AppendInvocation(invBuf[:0], &inv)
			req.Data = invBuf
			reqBuf = req.AppendMsgpack(reqBuf[:0])
			if err := DecodeRequest(reqBuf, &gotReq); err != nil {
				b.Fatal(err)
			}
			if err := DecodeInvocation(gotReq.Data, &gotInv); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(reqBuf)))
	})
	b.Run("codec-fresh", func(b *testing.B) {
		// Nothing reused: new buffers and values every call.
		b.ReportAllocs()
		for b.Loop() {
			req := benchRequest()
			req.Data = AppendInvocation(nil, &inv)
			buf := req.AppendMsgpack(nil)
			var gotReq PluginRequest
			if err := DecodeRequest(buf, &gotReq); err != nil {
				b.Fatal(err)
			}
			var gotInv Invocation
			if err := DecodeInvocation(gotReq.Data, &gotInv); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack-v5-reflect", func(b *testing.B) {
		ref := toRefInvocation(&inv)
		req := benchRequest()
		refReq := toRefRequest(&req)
		b.ReportAllocs()
		for b.Loop() {
			data, err := msgpack.Marshal(&ref)
			if err != nil {
				b.Fatal(err)
			}
			r := refReq
			r.Data = data
			buf, err := msgpack.Marshal(&r)
			if err != nil {
				b.Fatal(err)
			}
			var gotReq refRequest
			if err := msgpack.Unmarshal(buf, &gotReq); err != nil {
				b.Fatal(err)
			}
			var gotInv refInvocation
			if err := msgpack.Unmarshal(gotReq.Data, &gotInv); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeRequest(b *testing.B) {
	inv := benchInvocation()
	req := benchRequest()
	req.Data = AppendInvocation(nil, &inv)
	b.Run("codec", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = req.AppendMsgpack(buf[:0])
		}
	})
	b.Run("msgpack-v5-reflect", func(b *testing.B) {
		ref := toRefRequest(&req)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := msgpack.Marshal(&ref); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeRequest(b *testing.B) {
	inv := benchInvocation()
	req := benchRequest()
	req.Data = AppendInvocation(nil, &inv)
	buf := req.AppendMsgpack(nil)
	b.Run("codec", func(b *testing.B) {
		var got PluginRequest
		b.ReportAllocs()
		for b.Loop() {
			if err := DecodeRequest(buf, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack-v5-reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got refRequest
			if err := msgpack.Unmarshal(buf, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeInvocation(b *testing.B) {
	inv := benchInvocation()
	b.Run("codec", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendInvocation(buf[:0], &inv)
		}
	})
	b.Run("msgpack-v5-reflect", func(b *testing.B) {
		ref := toRefInvocation(&inv)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := msgpack.Marshal(&ref); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeInvocation(b *testing.B) {
	inv := benchInvocation()
	buf := AppendInvocation(nil, &inv)
	b.Run("codec", func(b *testing.B) {
		var got Invocation
		b.ReportAllocs()
		for b.Loop() {
			if err := DecodeInvocation(buf, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack-v5-reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got refInvocation
			if err := msgpack.Unmarshal(buf, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkResponseOpsRoundTrip(b *testing.B) {
	ops := goldenOps()
	b.Run("codec", func(b *testing.B) {
		resp := PluginResponse{Version: Version, RequestID: goldenID, Action: ActionNext}
		var opsBuf, respBuf []byte
		var got PluginResponse
		gotOps := make([]Op, 0, 8)
		b.ReportAllocs()
		for b.Loop() {
			opsBuf = AppendOps(opsBuf[:0], ops)
			resp.Data = opsBuf
			respBuf = resp.AppendMsgpack(respBuf[:0])
			if err := DecodeResponse(respBuf, &got); err != nil {
				b.Fatal(err)
			}
			var err error
			if gotOps, err = DecodeOps(got.Data, gotOps[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack-v5-reflect", func(b *testing.B) {
		refOps := make([]refOp, len(ops))
		for i, op := range ops {
			refOps[i] = refOp{op.Code, op.Key, op.Value, op.Num}
		}
		resp := refResponse{Version: 1, RequestID: goldenID[:], Action: "Next"}
		b.ReportAllocs()
		for b.Loop() {
			data, err := msgpack.Marshal(refOps)
			if err != nil {
				b.Fatal(err)
			}
			r := resp
			r.Data = data
			buf, err := msgpack.Marshal(&r)
			if err != nil {
				b.Fatal(err)
			}
			var got refResponse
			if err := msgpack.Unmarshal(buf, &got); err != nil {
				b.Fatal(err)
			}
			var gotOps []refOp
			if err := msgpack.Unmarshal(got.Data, &gotOps); err != nil {
				b.Fatal(err)
			}
		}
	})
}
