package protocol

import (
	"errors"
	"math"
	"sort"
	"testing"
)

// decodeCase is one input a decoder must reject, and the field it must name.
type decodeCase struct {
	name  string
	in    []byte
	field string
	is    error // optional extra sentinel the error must wrap
}

// checkDecodeError asserts err is a *DecodeError wrapping ErrDecode (and is)
// that names field.
func checkDecodeError(t *testing.T, err error, field string, is error) {
	t.Helper()
	if err == nil {
		t.Fatalf("decoded without error, want error on %q", field)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	if !errors.Is(err, ErrDecode) {
		t.Fatalf("error %v does not wrap ErrDecode", err)
	}
	if k, _ := KindOf(err); k != KindDecode {
		t.Fatalf("KindOf(%v) = %q", err, k)
	}
	if de.Field != field {
		t.Fatalf("field = %q, want %q (error: %v)", de.Field, field, err)
	}
	if is != nil && !errors.Is(err, is) {
		t.Fatalf("error %v does not wrap %v", err, is)
	}
}

func requestErrorCases() []decodeCase {
	rf := requestFields()
	return []decodeCase{
		{"empty", nil, "request", errTruncated},
		{"reserved byte", mBytes(0xc1), "request", nil},
		{"garbage", mBytes(0xff, 0x00, 0x13), "request", nil},
		{"array not map", cat(mArray(1), mUint(1)), "request", nil},
		{"nil", mNil(), "request", nil},
		{"trailing byte", cat(mMap(rf...), mBytes(0x00)), "request", nil},
		{"two messages", cat(mMap(rf...), mMap(rf...)), "request", nil},
		{"map count beyond input", cat(mBytes(0x8f), mMap(rf...)[1:]), "request", errTruncated},
		{"huge map32", mRaw("dfffffffff"), "request", errLength},
		{"truncated key", mRaw("81a7766572"), "request", errTruncated},
		{"request_id 15 bytes", mMap(set(rf, "request_id", mBin(make([]byte, 15)))...), "request_id", nil},
		{"request_id 17 bytes", mMap(set(rf, "request_id", mBin(make([]byte, 17)))...), "request_id", nil},
		{"request_id empty", mMap(set(rf, "request_id", mBin(nil))...), "request_id", nil},
		{"request_id as str", mMap(set(rf, "request_id", mStr("0123456789abcdef"))...), "request_id", nil},
		{"request_id as int", mMap(set(rf, "request_id", mUint(42))...), "request_id", nil},
		{"request_id nil", mMap(set(rf, "request_id", mNil())...), "request_id", nil},
		{"request_id bin32 huge", mMap(set(rf, "request_id", mRaw("c6ffffffff"))...), "request_id", errTruncated},
		{"version 0", mMap(set(rf, "version", mUint(0))...), "version", ErrUnsupportedVersion},
		{"version 3", mMap(set(rf, "version", mUint(3))...), "version", ErrUnsupportedVersion},
		{"version 70000", mMap(set(rf, "version", mUint(70000))...), "version", ErrUnsupportedVersion},
		{"version missing", mMap(del(rf, "version")...), "version", ErrUnsupportedVersion},
		{"version negative", mMap(set(rf, "version", mInt(-1))...), "version", errNegative},
		{"version str", mMap(set(rf, "version", mStr("1"))...), "version", nil},
		{"version 3 with a v3 field", mMap(set(set(rf, "version", mUint(3)), "phase", mStr("request_filter"))...), "version", ErrUnsupportedVersion},
		{"phase 5", mMap(set(rf, "phase", mUint(5))...), "phase", nil},
		{"phase 256", mMap(set(rf, "phase", mUint(256))...), "phase", nil},
		{"phase max uint64", mMap(set(rf, "phase", mUint(math.MaxUint64))...), "phase", nil},
		{"phase negative", mMap(set(rf, "phase", mInt(-1))...), "phase", errNegative},
		{"session_id 2^32", mMap(set(rf, "session_id", mUint(1<<32))...), "session_id", errOverflow},
		{"session_id negative int8", mMap(set(rf, "session_id", mInt(-100))...), "session_id", errNegative},
		{"session_id negative int64", mMap(set(rf, "session_id", mInt(math.MinInt64))...), "session_id", errNegative},
		{"method float", mMap(set(rf, "method", mRaw("cb3ff0000000000000"))...), "method", nil},
		{"method 2^32", mMap(set(rf, "method", mUint(1<<32))...), "method", errOverflow},
		{"timestamp negative", mMap(set(rf, "timestamp", mInt(-5))...), "timestamp", errNegative},
		{"timestamp truncated uint64", cat(mMap(del(rf, "timestamp")...)[:0], mBytes(0x87), mMap(del(rf, "timestamp")...)[1:], mStr("timestamp"), mRaw("cf0000")), "timestamp", errTruncated},
		{"data str", mMap(set(rf, "data", mStr("abc"))...), "data", nil},
		{"data int array over 255", mMap(set(rf, "data", cat(mArray(2), mUint(1), mUint(256)))...), "data", errOverflow},
		{"data int array negative", mMap(set(rf, "data", cat(mArray(1), mInt(-1)))...), "data", errNegative},
		{"data array of str", mMap(set(rf, "data", cat(mArray(1), mStr("a")))...), "data", nil},
		{"data huge array32", mMap(set(rf, "data", mRaw("ddffffffff"))...), "data", errLength},
		{"data huge bin32", mMap(set(rf, "data", mRaw("c6ffffffff"))...), "data", errTruncated},
		{"unknown key truncated value", cat(mBytes(0x88), mMap(rf...)[1:], mStr("extra"), mRaw("dc0003c0")), "extra", nil},
		{"unknown key huge map32", cat(mBytes(0x88), mMap(rf...)[1:], mStr("extra"), mRaw("dfffffffff")), "extra", errLength},
		{"unknown key reserved byte", cat(mBytes(0x88), mMap(rf...)[1:], mStr("extra"), mBytes(0xc1)), "extra", nil},
		{"unknown key nested bomb", cat(mBytes(0x88), mMap(rf...)[1:], mStr("extra"), repeat(mRaw("ddffffffff"), 100)), "extra", errLength},
		{"unknown odd key quoted", cat(mBytes(0x88), mMap(rf...)[1:], mStr("a.b"), mBytes(0xc1)), `"a.b"`, nil},
		{"non-string key bad value", cat(mBytes(0x88), mMap(rf...)[1:], mUint(7), mBytes(0xc1)), "(non-string key)", nil},
	}
}

func repeat(p []byte, n int) []byte {
	var b []byte
	for range n {
		b = append(b, p...)
	}
	return b
}

func TestDecodeRequestErrors(t *testing.T) {
	for _, tc := range requestErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			var req PluginRequest
			checkDecodeError(t, DecodeRequest(tc.in, &req), tc.field, tc.is)
		})
	}
}

func TestDecodeRequestLenient(t *testing.T) {
	rf := requestFields()
	want := goldenRequest()
	reversed := append([]field(nil), rf...)
	sort.Slice(reversed, func(i, j int) bool { return reversed[i].key > reversed[j].key })
	var withUnknown []field
	for name, v := range unknownValues() {
		withUnknown = append(withUnknown, field{"x_" + name, v})
	}
	withUnknown = append(withUnknown, rf...)
	withUnknown = append(withUnknown, field{"zz", mNil()})

	for _, tc := range []struct {
		name string
		in   []byte
		want func(*PluginRequest)
	}{
		{"reverse key order", mMap(reversed...), nil},
		{"unknown keys of every type", mMap(withUnknown...), nil},
		{"wide ints", mMap(set(set(set(set(rf,
			"version", mRaw("cf0000000000000001")),
			"session_id", mRaw("d20000012c")),
			"phase", mRaw("d001")),
			"method", mRaw("ce000000c8"))...), nil},
		{"signed non-negative timestamp", mMap(set(rf, "timestamp", mRaw("d30000018bcfe56800"))...), nil},
		{"str8 and str16 keys", cat(mBytes(0x87),
			mRaw("d907"), []byte("version"), mUint(1),
			mRaw("da000a"), []byte("request_id"), mBin(goldenID[:]),
			mRaw("db0000000a"), []byte("session_id"), mUint(300),
			mStr("phase"), mUint(1), mStr("method"), mUint(200),
			mStr("data"), mBin([]byte{1, 2, 3}), mStr("timestamp"), mUint(1700000000000)), nil},
		{"non-string key skipped", cat(mBytes(0x89), mMap(rf...)[1:], mUint(1), mStr("v"), mNil(), mArray(0)), nil},
		{"request_id as bin16", mMap(set(rf, "request_id", cat(mRaw("c50010"), goldenID[:]))...), nil},
		{"data as int array", mMap(set(rf, "data", cat(mArray(3), mUint(1), mRaw("cc02"), mRaw("d003")))...), nil},
		{"data nil", mMap(set(rf, "data", mNil())...), func(r *PluginRequest) { r.Data = nil }},
		{"data missing", mMap(del(rf, "data")...), func(r *PluginRequest) { r.Data = nil }},
		{"data bin32", mMap(set(rf, "data", mRaw("c600000003010203"))...), nil},
		{"duplicate key last wins", cat(mBytes(0x88), mMap(rf...)[1:], mStr("method"), mUint(7)), func(r *PluginRequest) { r.Method = 7 }},
		{"version 2 readable", mMap(set(rf, "version", mUint(2))...), func(r *PluginRequest) { r.Version = 2 }},
		{"phase 0 events", mMap(set(rf, "phase", mUint(0))...), func(r *PluginRequest) { r.Phase = PhaseEvent }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := want
			if tc.want != nil {
				tc.want(&w)
			}
			got := PluginRequest{Data: []byte("stale data"), Method: 99, Phase: 4}
			if err := DecodeRequest(tc.in, &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, w)
		})
	}
}

func TestRequestNewer(t *testing.T) {
	var r PluginRequest
	if err := DecodeRequest(mMap(set(requestFields(), "version", mUint(2))...), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Newer() {
		t.Fatal("version 2 not reported as newer")
	}
	r.Version = Version
	if r.Newer() {
		t.Fatal("current version reported as newer")
	}
	var s PluginResponse
	if err := DecodeResponse(mMap(set(responseFields(), "version", mUint(2))...), &s); err != nil {
		t.Fatal(err)
	}
	if !s.Newer() {
		t.Fatal("response version 2 not reported as newer")
	}
}

func responseErrorCases() []decodeCase {
	sf := responseFields()
	return []decodeCase{
		{"empty", nil, "response", errTruncated},
		{"array", mArray(0), "response", nil},
		{"trailing", cat(mMap(sf...), mNil()), "response", nil},
		{"version 0", mMap(set(sf, "version", mUint(0))...), "version", ErrUnsupportedVersion},
		{"version 3", mMap(set(sf, "version", mUint(3))...), "version", ErrUnsupportedVersion},
		{"version missing", mMap(del(sf, "version")...), "version", ErrUnsupportedVersion},
		{"request_id 8 bytes", mMap(set(sf, "request_id", mBin(make([]byte, 8)))...), "request_id", nil},
		{"action unknown", mMap(set(sf, "action", mStr("Maybe"))...), "action", nil},
		{"action lower case", mMap(set(sf, "action", mStr("next"))...), "action", nil},
		{"action as index", mMap(set(sf, "action", mUint(1))...), "action", nil},
		{"action nil", mMap(set(sf, "action", mNil())...), "action", nil},
		{"error int", mMap(set(sf, "error", mUint(1))...), "error", nil},
		{"error truncated str32", mMap(set(sf, "error", mRaw("dbffffffff"))...), "error", errTruncated},
		{"session_id overflow", mMap(set(sf, "session_id", mUint(math.MaxUint64))...), "session_id", errOverflow},
		{"data bool", mMap(set(sf, "data", mBytes(mpTrue))...), "data", nil},
		{"unknown truncated", cat(mBytes(0x87), mMap(sf...)[1:], mStr("x"), mRaw("c70501")), "x", nil},
	}
}

func TestDecodeResponseErrors(t *testing.T) {
	for _, tc := range responseErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			var resp PluginResponse
			checkDecodeError(t, DecodeResponse(tc.in, &resp), tc.field, tc.is)
		})
	}
}

func TestDecodeResponseLenient(t *testing.T) {
	sf := responseFields()
	for _, tc := range []struct {
		name string
		in   []byte
		want PluginResponse
	}{
		{"golden fields", mMap(sf...), goldenResponse()},
		{"error str", mMap(set(set(sf, "action", mStr("Error")), "error", mStr("bad"))...),
			PluginResponse{Version: 1, RequestID: goldenID, SessionID: 300, Action: ActionError, Data: []byte{0x90}, Error: "bad"}},
		{"error str8", mMap(set(set(sf, "action", mStr("Next")), "error", cat(mRaw("d903"), []byte("bad")))...),
			PluginResponse{Version: 1, RequestID: goldenID, SessionID: 300, Action: ActionNext, Data: []byte{0x90}, Error: "bad"}},
		{"action str8", mMap(set(sf, "action", cat(mRaw("d903"), []byte("End")))...), goldenResponse()},
		{"missing error and data", mMap(del(del(sf, "error"), "data")...),
			PluginResponse{Version: 1, RequestID: goldenID, SessionID: 300, Action: ActionEnd}},
		{"data as int array", mMap(set(sf, "data", cat(mArray(1), mRaw("cc90")))...), goldenResponse()},
		{"unknown keys", mMap(append(sf, field{"trace", mMap(field{"a", mArray(0)})}, field{"f", mRaw("cb0000000000000000")})...), goldenResponse()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PluginResponse{Error: "stale", Data: []byte("stale"), Action: ActionError}
			if err := DecodeResponse(tc.in, &got); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.want)
		})
	}
}

func TestEncodeResponseActions(t *testing.T) {
	for _, a := range []Action{ActionNext, ActionEnd, ActionError} {
		in := PluginResponse{Version: Version, RequestID: NewRequestID(), Action: a, Error: "e"}
		var out PluginResponse
		if err := DecodeResponse(in.AppendMsgpack(nil), &out); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, out, in)
	}
	// An out-of-range Action is written as its String form, which readers
	// refuse rather than guess.
	bad := PluginResponse{Version: Version, Action: Action(9)}
	var out PluginResponse
	checkDecodeError(t, DecodeResponse(bad.AppendMsgpack(nil), &out), "action", nil)
}

// TestDecodeTruncated cuts every valid message at every byte offset: each
// prefix must fail with a *DecodeError, never panic or succeed.
func TestDecodeTruncated(t *testing.T) {
	inv := benchInvocation()
	inv.Response = goldenInvocation().Response
	inv.WS = goldenInvocationWS().WS
	decoders := []struct {
		name   string
		msgs   [][]byte
		decode func([]byte) error
	}{
		{"request", [][]byte{golden(t, "request")}, func(b []byte) error { var r PluginRequest; return DecodeRequest(b, &r) }},
		{"response", [][]byte{golden(t, "response"), golden(t, "response_error")}, func(b []byte) error { var r PluginResponse; return DecodeResponse(b, &r) }},
		{"invocation", [][]byte{golden(t, "invocation"), golden(t, "invocation_ws"), AppendInvocation(nil, &inv)}, func(b []byte) error { var v Invocation; return DecodeInvocation(b, &v) }},
		{"ops", [][]byte{golden(t, "ops")}, func(b []byte) error { _, err := DecodeOps(b, nil); return err }},
	}
	for _, d := range decoders {
		for _, msg := range d.msgs {
			if err := d.decode(msg); err != nil {
				t.Fatalf("%s: full message: %v", d.name, err)
			}
			for i := range len(msg) {
				if d.name == "ops" && i == 0 {
					continue // empty data means no ops
				}
				err := d.decode(msg[:i])
				var de *DecodeError
				if !errors.As(err, &de) || !errors.Is(err, ErrDecode) {
					t.Fatalf("%s cut at %d/%d: error %v, want a *DecodeError", d.name, i, len(msg), err)
				}
			}
		}
	}
}

func TestPooledRequestDecode(t *testing.T) {
	b := golden(t, "request")
	var req PluginRequest
	req.Data = make([]byte, 0, 64)
	p := &req.Data[:1][0]
	allocs := testing.AllocsPerRun(100, func() {
		if err := DecodeRequest(b, &req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("pooled DecodeRequest allocates %.0f times, want 0", allocs)
	}
	if &req.Data[0] != p {
		t.Error("DecodeRequest did not reuse Data's capacity")
	}
	// Data is a copy: the caller may reuse b.
	b2 := append([]byte(nil), b...)
	if err := DecodeRequest(b2, &req); err != nil {
		t.Fatal(err)
	}
	clear(b2)
	mustEqual(t, req, goldenRequest())

	buf := make([]byte, 0, 256)
	allocs = testing.AllocsPerRun(100, func() { buf = req.AppendMsgpack(buf[:0]) })
	if allocs != 0 {
		t.Errorf("AppendMsgpack into a large enough buffer allocates %.0f times", allocs)
	}
}

func TestPayloadLimits(t *testing.T) {
	var zero PayloadLimits
	if zero.Max(PhaseRequestFilter) != DefaultMaxPayload {
		t.Fatalf("zero limits: max %d", zero.Max(PhaseRequestFilter))
	}
	l := PayloadLimits{Default: 1000, PerPhase: map[Phase]int{PhaseResponseBodyFilter: 5000, PhaseLogging: 0}}
	for _, tc := range []struct {
		p    Phase
		n    int
		fail bool
	}{
		{PhaseRequestFilter, 1000, false},
		{PhaseRequestFilter, 1001, true},
		{PhaseResponseBodyFilter, 5000, false},
		{PhaseResponseBodyFilter, 5001, true},
		{PhaseLogging, 1001, true}, // a 0 override falls back to Default
	} {
		err := l.Check(tc.p, tc.n)
		if !tc.fail {
			if err != nil {
				t.Errorf("Check(%s, %d) = %v", tc.p, tc.n, err)
			}
			continue
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Field != "payload" || !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrDecode) {
			t.Errorf("Check(%s, %d) = %v, want DecodeError{payload} wrapping ErrTooLarge", tc.p, tc.n, err)
		}
	}
	// An encoded message over the limit is caught before decoding.
	req := goldenRequest()
	req.Data = make([]byte, 2000)
	if err := l.Check(req.Phase, len(req.AppendMsgpack(nil))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized request passed Check: %v", err)
	}
	if err := zero.Check(PhaseRequestFilter, DefaultMaxPayload+1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("default limit not applied: %v", err)
	}
}
