package protocol

import (
	"bytes"
	"testing"
)

// The golden vectors in testdata are written by hand from the msgpack spec
// (see testdata/README.md); each must decode to the expected value and our
// encoder must reproduce it byte for byte.

func TestGoldenRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		want PluginRequest
	}{
		{"request", goldenRequest()},
		{"request_wide", goldenRequestWide()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := golden(t, tc.name)
			var got PluginRequest
			if err := DecodeRequest(b, &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.want)
			if enc := tc.want.AppendMsgpack(nil); !bytes.Equal(enc, b) {
				t.Fatalf("encode:\ngot  % x\nwant % x", enc, b)
			}
			if enc := got.AppendMsgpack(nil); !bytes.Equal(enc, b) {
				t.Fatalf("re-encode of decoded value differs:\ngot  % x\nwant % x", enc, b)
			}
		})
	}
}

func TestGoldenResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		want PluginResponse
	}{
		{"response", goldenResponse()},
		{"response_error", goldenResponseError()},
		{"response_next", goldenResponseNext()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := golden(t, tc.name)
			var got PluginResponse
			if err := DecodeResponse(b, &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.want)
			if enc := tc.want.AppendMsgpack(nil); !bytes.Equal(enc, b) {
				t.Fatalf("encode:\ngot  % x\nwant % x", enc, b)
			}
			if enc := got.AppendMsgpack(nil); !bytes.Equal(enc, b) {
				t.Fatalf("re-encode:\ngot  % x\nwant % x", enc, b)
			}
		})
	}
}

func TestGoldenOps(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []Op
	}{
		{"ops", goldenOps()},
		{"ops_ints", goldenOpsInts()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := golden(t, tc.name)
			got, err := DecodeOps(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.want)
			if enc := AppendOps(nil, tc.want); !bytes.Equal(enc, b) {
				t.Fatalf("encode:\ngot  % x\nwant % x", enc, b)
			}
			if enc := AppendOps(nil, got); !bytes.Equal(enc, b) {
				t.Fatalf("re-encode:\ngot  % x\nwant % x", enc, b)
			}
		})
	}
	// The op list inside response_next's data is one of these lists too.
	var resp PluginResponse
	if err := DecodeResponse(golden(t, "response_next"), &resp); err != nil {
		t.Fatal(err)
	}
	ops, err := DecodeOps(resp.Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, ops, []Op{{Code: OpSetResponseStatus, Num: 201}})
}

func TestGoldenInvocation(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Invocation
	}{
		{"invocation", goldenInvocation()},
		{"invocation_ws", goldenInvocationWS()},
		{"invocation_full", goldenInvocationFull()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := golden(t, tc.name)
			var got Invocation
			if err := DecodeInvocation(b, &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.want)
			if enc := AppendInvocation(nil, &tc.want); !bytes.Equal(enc, b) {
				t.Fatalf("encode:\ngot  % x\nwant % x", enc, b)
			}
			if enc := AppendInvocation(nil, &got); !bytes.Equal(enc, b) {
				t.Fatalf("re-encode:\ngot  % x\nwant % x", enc, b)
			}
		})
	}
}

// TestGoldenPeerVariants: vectors marked DECODE ONLY are what a Rust peer
// other than the one the README declares writes (the seed's own struct, a
// newer version); our encoder writes the canonical form instead, so only
// decoding is checked.
func TestGoldenPeerVariants(t *testing.T) {
	var req PluginRequest
	if err := DecodeRequest(golden(t, "request_seed"), &req); err != nil {
		t.Fatal(err)
	}
	want := goldenRequest()
	want.Data = []byte{0x01, 0x80, 0xff}
	mustEqual(t, req, want)

	var resp PluginResponse
	if err := DecodeResponse(golden(t, "response_newer"), &resp); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, resp, PluginResponse{Version: 2, RequestID: goldenID, SessionID: 300, Action: ActionError, Error: "boom"})
	if !resp.Newer() {
		t.Fatal("a version 2 response is not reported as newer")
	}
}
