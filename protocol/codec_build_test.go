package protocol

import "encoding/hex"

// Builders for hand-made test messages. They use the append primitives,
// which TestAppend* checks against the spec's byte forms.

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func mStr(s string) []byte    { return appendStr(nil, s) }
func mUint(v uint64) []byte   { return appendUint(nil, v) }
func mInt(v int64) []byte     { return appendInt(nil, v) }
func mBin(p []byte) []byte    { return appendBin(nil, p) }
func mRaw(h string) []byte    { b, _ := hex.DecodeString(h); return b }
func mArray(n int) []byte     { return appendArrayHeader(nil, n) }
func mNil() []byte            { return []byte{mpNil} }
func mBytes(p ...byte) []byte { return p }

// field is one map entry of a hand-made message.
type field struct {
	key string
	val []byte
}

// mMap encodes fields as a map in the given order.
func mMap(fs ...field) []byte {
	b := appendMapHeader(nil, len(fs))
	for _, f := range fs {
		b = append(appendStr(b, f.key), f.val...)
	}
	return b
}

// set returns fs with key's value replaced, or the entry appended.
func set(fs []field, key string, val []byte) []field {
	out := append([]field(nil), fs...)
	for i := range out {
		if out[i].key == key {
			out[i].val = val
			return out
		}
	}
	return append(out, field{key, val})
}

// del returns fs without key.
func del(fs []field, key string) []field {
	var out []field
	for _, f := range fs {
		if f.key != key {
			out = append(out, f)
		}
	}
	return out
}

func requestFields() []field {
	return []field{
		{"version", mUint(1)},
		{"request_id", mBin(goldenID[:])},
		{"session_id", mUint(300)},
		{"phase", mUint(1)},
		{"method", mUint(200)},
		{"data", mBin([]byte{1, 2, 3})},
		{"timestamp", mUint(1700000000000)},
	}
}

func responseFields() []field {
	return []field{
		{"version", mUint(1)},
		{"request_id", mBin(goldenID[:])},
		{"session_id", mUint(300)},
		{"action", mStr("End")},
		{"data", mBin([]byte{0x90})},
		{"error", mNil()},
	}
}

// unknownValues are values of every msgpack type, for unknown keys a reader
// must skip.
func unknownValues() map[string][]byte {
	return map[string][]byte{
		"nil":       mNil(),
		"true":      {mpTrue},
		"negfix":    {0xe5},
		"int64":     mInt(-1 << 40),
		"uint64":    mUint(1 << 40),
		"float32":   mRaw("ca3f800000"),
		"float64":   mRaw("cb3ff0000000000000"),
		"str8":      mStr("a string longer than thirty-one bytes"),
		"bin16":     mBin(make([]byte, 300)),
		"fixext1":   mRaw("d40101"),
		"fixext16":  cat(mRaw("d801"), make([]byte, 16)),
		"ext8":      mRaw("c70305616263"),
		"ext16":     mRaw("c80002ff0102"),
		"ext32":     mRaw("c900000001ff01"),
		"nested":    mMap(field{"a", cat(mArray(2), mMap(field{"b", mArray(0)}), mRaw("dc0001c0"))}, field{"c", mRaw("de0000")}),
		"array32":   cat(mRaw("dd00000002"), mUint(1), mStr("x")),
		"map32":     cat(mRaw("df00000001"), mUint(1), mNil()),
		"timestamp": mRaw("d6ff00000001"),
	}
}
