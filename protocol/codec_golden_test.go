package protocol

import (
	"bytes"
	"testing"
)

// The golden vectors in testdata are written by hand from the msgpack spec
// (see testdata/README.md); each must decode to the expected value and our
// encoder must reproduce it byte for byte.

func TestGoldenRequest(t *testing.T) {
	b := golden(t, "request")
	var got PluginRequest
	if err := DecodeRequest(b, &got); err != nil {
		t.Fatal(err)
	}
	want := goldenRequest()
	mustEqual(t, got, want)
	if enc := want.AppendMsgpack(nil); !bytes.Equal(enc, b) {
		t.Fatalf("encode:\ngot  % x\nwant % x", enc, b)
	}
	if enc := got.AppendMsgpack(nil); !bytes.Equal(enc, b) {
		t.Fatalf("re-encode of decoded value differs:\ngot  % x\nwant % x", enc, b)
	}
}

func TestGoldenResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		want PluginResponse
	}{
		{"response", goldenResponse()},
		{"response_error", goldenResponseError()},
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
	b := golden(t, "ops")
	got, err := DecodeOps(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, goldenOps())
	if enc := AppendOps(nil, goldenOps()); !bytes.Equal(enc, b) {
		t.Fatalf("encode:\ngot  % x\nwant % x", enc, b)
	}
	if enc := AppendOps(nil, got); !bytes.Equal(enc, b) {
		t.Fatalf("re-encode:\ngot  % x\nwant % x", enc, b)
	}
}

func TestGoldenInvocation(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Invocation
	}{
		{"invocation", goldenInvocation()},
		{"invocation_ws", goldenInvocationWS()},
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
