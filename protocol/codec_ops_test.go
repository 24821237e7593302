package protocol

import (
	"bytes"
	"math"
	"testing"
)

func opFields() []field {
	return []field{{"op", mUint(100)}, {"key", mStr("k")}, {"value", mBin([]byte("v"))}, {"num", mInt(-7)}}
}

func opsErrorCases() []decodeCase {
	of := opFields()
	ops := func(fs ...[]field) []byte {
		b := mArray(len(fs))
		for _, f := range fs {
			b = append(b, mMap(f...)...)
		}
		return b
	}
	return []decodeCase{
		{"map not array", mMap(), "data", nil},
		{"str", mStr("ops"), "data", nil},
		{"reserved byte", mBytes(0xc1), "data", nil},
		{"trailing", cat(ops(of), mBytes(0)), "data", nil},
		{"huge array32", mRaw("ddffffffff"), "data", errLength},
		{"array claims more", cat(mRaw("dc0002"), mMap(of...)), "data[1]", errTruncated},
		{"element not map", cat(mArray(2), mMap(of...), mArray(0)), "data[1]", nil},
		{"element nil", cat(mArray(1), mNil()), "data[0]", nil},
		{"op 2^32", ops(of, set(of, "op", mUint(1<<32))), "data[1].op", errOverflow},
		{"op negative", ops(set(of, "op", mInt(-1))), "data[0].op", errNegative},
		{"op str", ops(set(of, "op", mStr("100"))), "data[0].op", nil},
		{"num above int64", ops(of, of, set(of, "num", mUint(math.MaxUint64))), "data[2].num", errOverflow},
		{"num float", ops(set(of, "num", mRaw("ca00000000"))), "data[0].num", nil},
		{"key int", ops(set(of, "key", mUint(1))), "data[0].key", nil},
		{"value bool", ops(set(of, "value", mBytes(mpFalse))), "data[0].value", nil},
		{"value byte 256", ops(set(of, "value", cat(mArray(1), mUint(256)))), "data[0].value", errOverflow},
		{"value truncated bin", cat(mArray(1), mBytes(0x84), mStr("value"), mRaw("c410")), "data[0].value", errTruncated},
		{"unknown key bad value", ops(set(of, "extra", mBytes(0xc1))), "data[0].extra", nil},
	}
}

func TestDecodeOpsErrors(t *testing.T) {
	for _, tc := range opsErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			prev := []Op{{Code: 1, Key: "kept"}}
			got, err := DecodeOps(tc.in, prev)
			checkDecodeError(t, err, tc.field, tc.is)
			if len(got) != 1 || got[0].Key != "kept" {
				t.Fatalf("on error DecodeOps returned %v, want the original ops", got)
			}
		})
	}
}

func TestDecodeOpsLenient(t *testing.T) {
	want := []Op{{Code: 100, Key: "k", Value: []byte("v"), Num: -7}}
	of := opFields()
	for _, tc := range []struct {
		name string
		in   []byte
		want []Op
	}{
		{"empty input", nil, nil},
		{"nil", mNil(), nil},
		{"empty array", mArray(0), nil},
		{"all keys", cat(mArray(1), mMap(of...)), want},
		{"reverse order", cat(mArray(1), mMap(of[3], of[2], of[1], of[0])), want},
		{"wide ints", cat(mArray(1), mMap(set(set(of, "op", mRaw("d30000000000000064")), "num", mRaw("d3fffffffffffffff9"))...)), want},
		{"value as int array", cat(mArray(1), mMap(set(of, "value", cat(mArray(1), mUint('v')))...)), want},
		{"value bin16", cat(mArray(1), mMap(set(of, "value", mRaw("c50001"+"76"))...)), want},
		{"nil key and value", cat(mArray(1), mMap(set(set(of, "key", mNil()), "value", mNil())...)), []Op{{Code: 100, Num: -7}}},
		{"missing keys", cat(mArray(1), mMap(field{"op", mUint(102)})), []Op{{Code: 102}}},
		{"unknown keys", cat(mArray(1), mMap(append(of, field{"ttl", mRaw("cb4000000000000000")}, field{"meta", mMap(field{"a", mArray(0)})})...)), want},
		{"num int64 min", cat(mArray(1), mMap(field{"num", mInt(math.MinInt64)})), []Op{{Num: math.MinInt64}}},
		{"array16 of one", cat(mRaw("dc0001"), mMap(of...)), want},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeOps(tc.in, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.want)
			again, err := DecodeOps(AppendOps(nil, got), nil)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, again, got)
		})
	}
}

func TestDecodeOpsAppends(t *testing.T) {
	b := golden(t, "ops")
	prev := make([]Op, 1, 10)
	prev[0] = Op{Code: 1, Key: "first"}
	got, err := DecodeOps(b, prev)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+len(goldenOps()) || got[0].Key != "first" {
		t.Fatalf("DecodeOps did not append: %+v", got)
	}
	mustEqual(t, got[1:], goldenOps())

	// Values share a chunk but never each other's room: appending to one
	// must not overwrite the next, and the input is not aliased.
	in := append([]byte(nil), b...)
	ops, err := DecodeOps(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	clear(in)
	mustEqual(t, ops, goldenOps())
	ops[0].Value = append(ops[0].Value, "XXXXXXXX"...)
	if !bytes.Equal(ops[2].Value, []byte("bye")) || !bytes.Equal(ops[3].Value, []byte("hi")) {
		t.Fatalf("appending to one value changed another: %q %q", ops[2].Value, ops[3].Value)
	}

	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeOps(b, prev[:0]); err != nil {
			t.Fatal(err)
		}
	})
	// One chunk for the keys and one for the values.
	if allocs > 2 {
		t.Errorf("DecodeOps into a large enough slice allocates %.0f times, want at most 2", allocs)
	}
	if got := AppendOps(nil, nil); !bytes.Equal(got, []byte{0x90}) {
		t.Fatalf("AppendOps(nil) = % x, want 90", got)
	}
}
