package protocol

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// The fuzz targets are seeded from the golden vectors and the unit-test
// tables. Each checks that decoding never panics, that every failure is a
// *DecodeError wrapping ErrDecode, and the round-trip property: whatever
// decodes re-encodes to bytes that decode to an equal value and re-encode
// to the same bytes. Decoding into a dirty, pooled value must give the same
// result as decoding into a fresh one.

func checkFuzzError(t *testing.T, err error) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, ErrDecode) {
		t.Fatalf("error %v (%T) is not a *DecodeError wrapping ErrDecode", err, err)
	}
	if de.Field == "" {
		t.Fatalf("error %v names no field", err)
	}
}

func addCases(f *testing.F, cases []decodeCase) {
	for _, tc := range cases {
		f.Add(tc.in)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(golden(f, "request"))
	f.Add(golden(f, "request_wide"))
	f.Add(golden(f, "request_seed"))
	addCases(f, requestErrorCases())
	var unknown []field
	for name, v := range unknownValues() {
		unknown = append(unknown, field{name, v})
	}
	f.Add(mMap(append(requestFields(), unknown...)...))
	f.Add(mMap(set(requestFields(), "data", cat(mArray(2), mUint(1), mRaw("d002")))...))
	f.Add(mMap(set(requestFields(), "version", mUint(2))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got PluginRequest
		err := DecodeRequest(b, &got)
		dirty := PluginRequest{Version: 9, Phase: 9, Method: 9, Data: []byte("dirty data"), Timestamp: 9}
		dirtyErr := DecodeRequest(b, &dirty)
		if (err == nil) != (dirtyErr == nil) {
			t.Fatalf("fresh decode: %v, pooled decode: %v", err, dirtyErr)
		}
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		mustEqual(t, dirty, got)
		enc := got.AppendMsgpack(nil)
		var again PluginRequest
		if err := DecodeRequest(enc, &again); err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", got, err)
		}
		mustEqual(t, again, got)
		if enc2 := again.AppendMsgpack(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n% x\n% x", enc, enc2)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(golden(f, "response"))
	f.Add(golden(f, "response_error"))
	f.Add(golden(f, "response_next"))
	f.Add(golden(f, "response_newer"))
	f.Add(mMap(set(set(responseFields(), "action", mStr("Error")), "error", mStr("bad \xff"))...))
	addCases(f, responseErrorCases())
	f.Add(mMap(set(set(responseFields(), "action", mStr("Error")), "error", mStr("bad"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got PluginResponse
		err := DecodeResponse(b, &got)
		dirty := PluginResponse{Version: 9, Action: ActionError, Data: []byte("dirty"), Error: "dirty"}
		dirtyErr := DecodeResponse(b, &dirty)
		if (err == nil) != (dirtyErr == nil) {
			t.Fatalf("fresh decode: %v, pooled decode: %v", err, dirtyErr)
		}
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		mustEqual(t, dirty, got)
		enc := got.AppendMsgpack(nil)
		var again PluginResponse
		if err := DecodeResponse(enc, &again); err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", got, err)
		}
		want := got
		want.Error = strings.ToValidUTF8(got.Error, "\uFFFD") // see appendText
		mustEqual(t, again, want)
		if enc2 := again.AppendMsgpack(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n% x\n% x", enc, enc2)
		}
	})
}

func FuzzDecodeInvocation(f *testing.F) {
	f.Add(golden(f, "invocation"))
	f.Add(golden(f, "invocation_ws"))
	f.Add(golden(f, "invocation_full"))
	inv := benchInvocation()
	f.Add(AppendInvocation(nil, &inv))
	addCases(f, invocationErrorCases())
	f.Add(mMap(field{"request", mMap(field{"headers", cat(mArray(1), mArray(2), mStr("a"), mNil())})}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Invocation
		err := DecodeInvocation(b, &got)
		dirty := benchInvocation()
		dirty.Response = &HTTPResponse{Status: 1, Headers: []Header{{"x", "y"}}, Body: []byte("dirty"), Error: "e"}
		dirty.WS = &WSEvent{Kind: WSClose, Payload: []byte("dirty"), CloseCode: 1}
		dirtyErr := DecodeInvocation(b, &dirty)
		if (err == nil) != (dirtyErr == nil) {
			t.Fatalf("fresh decode: %v, pooled decode: %v", err, dirtyErr)
		}
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		mustEqual(t, dirty, got)
		enc := AppendInvocation(nil, &got)
		var again Invocation
		if err := DecodeInvocation(enc, &again); err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", got, err)
		}
		mustEqual(t, again, got)
		if enc2 := AppendInvocation(nil, &again); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n% x\n% x", enc, enc2)
		}
	})
}

func FuzzDecodeOps(f *testing.F) {
	f.Add(golden(f, "ops"))
	f.Add(golden(f, "ops_ints"))
	addCases(f, opsErrorCases())
	f.Add([]byte{})
	f.Add(cat(mArray(1), mMap(field{"value", cat(mArray(1), mUint(7))}, field{"x", mRaw("d40000")})))
	f.Fuzz(func(t *testing.T, b []byte) {
		prefix := []Op{{Code: 1, Key: "kept", Value: []byte("v")}}
		got, err := DecodeOps(b, prefix)
		if err != nil {
			checkFuzzError(t, err)
			if len(got) != 1 || got[0].Key != "kept" {
				t.Fatalf("on error DecodeOps returned %+v", got)
			}
			return
		}
		if got[0].Key != "kept" {
			t.Fatal("DecodeOps changed an existing element")
		}
		got = got[1:]
		enc := AppendOps(nil, got)
		again, err := DecodeOps(enc, nil)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", got, err)
		}
		want := slices.Clone(got)
		for i := range want {
			want[i].Key = strings.ToValidUTF8(want[i].Key, "\uFFFD") // see appendText
		}
		mustEqual(t, again, want)
		if enc2 := AppendOps(nil, again); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n% x\n% x", enc, enc2)
		}
	})
}
