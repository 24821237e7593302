package protocol

import (
	"math"
	"strings"
	"unicode/utf8"
)

// Append-side msgpack primitives. Every helper writes the smallest form the
// spec allows, which is also what rmp's write_uint/write_sint/write_str/
// write_bin_len pick, so our bytes equal rmp_serde::to_vec_named's.
//
// Lengths above 2^32-1 cannot be expressed in msgpack; PayloadLimits keeps
// messages far below that, so the helpers do not check.

// msgpack format bytes used by the codec.
const (
	mpNil      = 0xc0
	mpNever    = 0xc1
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpExt16    = 0xc8
	mpExt32    = 0xc9
	mpFloat32  = 0xca
	mpFloat64  = 0xcb
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpFixExt1  = 0xd4
	mpFixExt16 = 0xd8
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

func appendNil(b []byte) []byte { return append(b, mpNil) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return append(b, mpUint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, mpUint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, mpUint64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendInt writes non-negative values as unsigned, like rmp's write_sint.
func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v)) // negative fixint 0xe0..0xff
	case v >= math.MinInt8:
		return append(b, mpInt8, byte(v))
	case v >= math.MinInt16:
		return append(b, mpInt16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, mpInt32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, mpInt64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		return append(b, mpStr16, byte(n>>8), byte(n))
	}
	return append(b, mpStr32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendStr(b []byte, s string) []byte {
	return append(appendStrHeader(b, len(s)), s...)
}

// appendText writes s as a str that a serde String can hold. msgpack's str
// is UTF-8 text and rmp-serde fails the whole message on a str that is not
// valid UTF-8, so invalid sequences are written as U+FFFD. Text a Rust
// caller reads and a guest controls (a handler's error text, op keys) goes
// through here; valid text, the common case, is written as is without a copy.
func appendText(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return appendStr(b, s)
}

// appendOptText is appendText that writes nil for "", like Option<String>::None.
func appendOptText(b []byte, s string) []byte {
	if s == "" {
		return appendNil(b)
	}
	return appendText(b, s)
}

// appendOptStr writes nil for "", like Rust's Option<String>::None.
func appendOptStr(b []byte, s string) []byte {
	if s == "" {
		return appendNil(b)
	}
	return appendStr(b, s)
}

func appendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, mpBin8, byte(n))
	case n <= math.MaxUint16:
		return append(b, mpBin16, byte(n>>8), byte(n))
	}
	return append(b, mpBin32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendBin writes p as bin, even when empty: serde_bytes on Vec<u8> never
// writes nil.
func appendBin(b []byte, p []byte) []byte {
	return append(appendBinHeader(b, len(p)), p...)
}

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpArray16, byte(n>>8), byte(n))
	}
	return append(b, mpArray32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpMap16, byte(n>>8), byte(n))
	}
	return append(b, mpMap32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendKVMap writes kvs as a str->str map in slice order.
func appendKVMap(b []byte, kvs []KV) []byte {
	b = appendMapHeader(b, len(kvs))
	for i := range kvs {
		b = appendStr(b, kvs[i].Key)
		b = appendStr(b, kvs[i].Value)
	}
	return b
}

// appendHeaders writes headers as [[name, value], ...].
func appendHeaders(b []byte, hs []Header) []byte {
	b = appendArrayHeader(b, len(hs))
	for i := range hs {
		b = append(b, 0x92)
		b = appendStr(b, hs[i].Name)
		b = appendStr(b, hs[i].Value)
	}
	return b
}

// strSize is the encoded size of a str of n bytes.
func strSize(n int) int {
	switch {
	case n <= 31:
		return 1 + n
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// binSize is the encoded size of a bin of n bytes.
func binSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// grow returns b with room for n more bytes, allocating at most once, so an
// encoder appending into a nil or small buffer allocates exactly once.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}
