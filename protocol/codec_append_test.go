package protocol

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// Expected forms come from the msgpack spec's format table; the boundaries
// are where rmp's write_uint/write_sint/write_str/write_bin_len switch form.

func TestAppendUint(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		want []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0xcc, 0x80}},
		{255, []byte{0xcc, 0xff}},
		{256, []byte{0xcd, 0x01, 0x00}},
		{65535, []byte{0xcd, 0xff, 0xff}},
		{65536, []byte{0xce, 0x00, 0x01, 0x00, 0x00}},
		{math.MaxUint32, []byte{0xce, 0xff, 0xff, 0xff, 0xff}},
		{math.MaxUint32 + 1, []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}},
		{math.MaxUint64, []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	} {
		got := appendUint(nil, tc.v)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("appendUint(%d) = % x, want % x", tc.v, got, tc.want)
		}
		r := reader{b: got}
		if v, err := r.readUint(math.MaxUint64); err != nil || v != tc.v {
			t.Errorf("readUint(% x) = %d, %v", got, v, err)
		}
	}
}

func TestAppendInt(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		want []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{200, []byte{0xcc, 0xc8}}, // non-negative is written unsigned, like write_sint
		{math.MaxInt64, []byte{0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{-1, []byte{0xff}},
		{-32, []byte{0xe0}},
		{-33, []byte{0xd0, 0xdf}},
		{-128, []byte{0xd0, 0x80}},
		{-129, []byte{0xd1, 0xff, 0x7f}},
		{-32768, []byte{0xd1, 0x80, 0x00}},
		{-32769, []byte{0xd2, 0xff, 0xff, 0x7f, 0xff}},
		{math.MinInt32, []byte{0xd2, 0x80, 0, 0, 0}},
		{math.MinInt32 - 1, []byte{0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}},
		{math.MinInt64, []byte{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}},
	} {
		got := appendInt(nil, tc.v)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("appendInt(%d) = % x, want % x", tc.v, got, tc.want)
		}
		r := reader{b: got}
		if v, err := r.readInt(); err != nil || v != tc.v {
			t.Errorf("readInt(% x) = %d, %v", got, v, err)
		}
	}
}

func TestAppendHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"fixstr 0", appendStrHeader(nil, 0), []byte{0xa0}},
		{"fixstr 31", appendStrHeader(nil, 31), []byte{0xbf}},
		{"str8 32", appendStrHeader(nil, 32), []byte{0xd9, 32}},
		{"str8 255", appendStrHeader(nil, 255), []byte{0xd9, 0xff}},
		{"str16 256", appendStrHeader(nil, 256), []byte{0xda, 0x01, 0x00}},
		{"str32 65536", appendStrHeader(nil, 65536), []byte{0xdb, 0, 1, 0, 0}},
		{"bin8 0", appendBinHeader(nil, 0), []byte{0xc4, 0}},
		{"bin8 255", appendBinHeader(nil, 255), []byte{0xc4, 0xff}},
		{"bin16 256", appendBinHeader(nil, 256), []byte{0xc5, 0x01, 0x00}},
		{"bin32 65536", appendBinHeader(nil, 65536), []byte{0xc6, 0, 1, 0, 0}},
		{"fixarray 15", appendArrayHeader(nil, 15), []byte{0x9f}},
		{"array16 16", appendArrayHeader(nil, 16), []byte{0xdc, 0, 16}},
		{"array32 65536", appendArrayHeader(nil, 65536), []byte{0xdd, 0, 1, 0, 0}},
		{"fixmap 15", appendMapHeader(nil, 15), []byte{0x8f}},
		{"map16 16", appendMapHeader(nil, 16), []byte{0xde, 0, 16}},
		{"map32 65536", appendMapHeader(nil, 65536), []byte{0xdf, 0, 1, 0, 0}},
		{"nil for empty optional str", appendOptStr(nil, ""), []byte{0xc0}},
		{"true", appendBool(nil, true), []byte{0xc3}},
		{"false", appendBool(nil, false), []byte{0xc2}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: got % x, want % x", tc.name, tc.got, tc.want)
		}
	}
	// strSize and binSize agree with what the helpers write.
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("a", n)
		if got := len(appendStr(nil, s)); got != strSize(n) {
			t.Errorf("strSize(%d) = %d, encoded %d", n, strSize(n), got)
		}
		if got := len(appendBin(nil, []byte(s))); got != binSize(n) {
			t.Errorf("binSize(%d) = %d, encoded %d", n, binSize(n), got)
		}
	}
}

func TestEncodeLongFields(t *testing.T) {
	// Widths above the fix forms survive a round trip in every field kind.
	long := strings.Repeat("v", 70000)
	inv := goldenInvocation()
	inv.Request.Path = long
	inv.Request.Body = []byte(long)
	inv.Request.Headers = make([]Header, 20)
	for i := range inv.Request.Headers {
		inv.Request.Headers[i] = Header{"x-h", long[:40]}
	}
	inv.Config = make([]KV, 17)
	for i := range inv.Config {
		inv.Config[i] = KV{strings.Repeat("k", i+1), long[:300]}
	}
	b := AppendInvocation(nil, &inv)
	if len(b) > invocationSize(&inv) {
		t.Errorf("invocationSize %d below encoded size %d", invocationSize(&inv), len(b))
	}
	var got Invocation
	if err := DecodeInvocation(b, &got); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, inv)
}
