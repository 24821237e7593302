package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Causes wrapped in a *DecodeError by the decoders.
var (
	errTruncated = errors.New("unexpected end of input")
	errNegative  = errors.New("negative value for an unsigned field")
	errOverflow  = errors.New("value out of range")
	errLength    = errors.New("claimed length exceeds the remaining input")
)

// typeError says which msgpack type was found where another was expected.
type typeError struct {
	want string
	got  byte
}

func (e *typeError) Error() string { return "want " + e.want + ", got " + formatName(e.got) }

// formatName names the msgpack format of a leading byte, for error messages.
func formatName(c byte) string {
	switch {
	case c <= 0x7f:
		return "positive fixint"
	case c <= 0x8f:
		return "fixmap"
	case c <= 0x9f:
		return "fixarray"
	case c <= 0xbf:
		return "fixstr"
	case c >= 0xe0:
		return "negative fixint"
	}
	return [...]string{
		"nil", "reserved byte 0xc1", "false", "true", "bin8", "bin16", "bin32",
		"ext8", "ext16", "ext32", "float32", "float64", "uint8", "uint16", "uint32", "uint64",
		"int8", "int16", "int32", "int64", "fixext1", "fixext2", "fixext4", "fixext8", "fixext16",
		"str8", "str16", "str32", "array16", "array32", "map16", "map32",
	}[c-0xc0]
}

// Strings of a message are not copied one by one: the decoder copies a
// window of up to arenaChunk input bytes into one string and hands out
// substrings of it, so a message's short strings cost one allocation and a
// slice each. A window starts at the string that needs it, and windows
// overlap by less than arenaMaxStr, so the bytes copied stay close to the
// input size whatever the message holds. Longer strings get their own copy.
const (
	arenaChunk  = 2048
	arenaMaxStr = 256
)

// Element counts above preallocCap grow by append as elements actually
// decode, so a forged count can never reserve more memory than the elements
// the input really holds.
const preallocCap = 64

// reader walks one msgpack message. It allocates only for string windows,
// for copied bytes and for errors. It never recurses, so nesting
// depth cannot exhaust the stack.
type reader struct {
	b   []byte
	off int
	// win is a copy of b[winOff:winOff+len(win)] that strings are sliced
	// from; see str.
	win    string
	winOff int
	// bytes is the current chunk for copied byte values (Op.Value).
	bytes []byte
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) readByte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// readN returns the next n bytes, capped so appends to them cannot reach
// past them into the input.
func (r *reader) readN(n uint64) ([]byte, error) {
	if n > uint64(r.remaining()) {
		return nil, errTruncated
	}
	end := r.off + int(n)
	p := r.b[r.off:end:end]
	r.off = end
	return p, nil
}

// readBE reads an n-byte big-endian unsigned integer, n in {1, 2, 4, 8}.
func (r *reader) readBE(n int) (uint64, error) {
	if n > r.remaining() {
		return 0, errTruncated
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

// readNil consumes a nil and reports whether there was one.
func (r *reader) readNil() bool {
	if r.off < len(r.b) && r.b[r.off] == mpNil {
		r.off++
		return true
	}
	return false
}

// readUint reads any msgpack integer form and checks it fits in [0, max].
func (r *reader) readUint(max uint64) (uint64, error) {
	c, err := r.readByte()
	if err != nil {
		return 0, err
	}
	var v uint64
	switch {
	case c <= 0x7f:
		v = uint64(c)
	case c >= 0xe0:
		return 0, errNegative
	case c >= mpUint8 && c <= mpUint64:
		v, err = r.readBE(1 << (c - mpUint8))
	case c >= mpInt8 && c <= mpInt64:
		var s int64
		s, err = r.readSigned(c)
		if err == nil && s < 0 {
			return 0, errNegative
		}
		v = uint64(s)
	default:
		return 0, &typeError{"integer", c}
	}
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, fmt.Errorf("%w: %d above %d", errOverflow, v, max)
	}
	return v, nil
}

// readSigned reads the payload of int8..int64 format byte c.
func (r *reader) readSigned(c byte) (int64, error) {
	n := 1 << (c - mpInt8)
	u, err := r.readBE(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return int64(int8(u)), nil
	case 2:
		return int64(int16(u)), nil
	case 4:
		return int64(int32(u)), nil
	}
	return int64(u), nil
}

// readInt reads any msgpack integer form into an int64.
func (r *reader) readInt() (int64, error) {
	c, err := r.readByte()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= mpUint8 && c <= mpUint64:
		u, err := r.readBE(1 << (c - mpUint8))
		if err != nil {
			return 0, err
		}
		if u > math.MaxInt64 {
			return 0, fmt.Errorf("%w: %d above %d", errOverflow, u, int64(math.MaxInt64))
		}
		return int64(u), nil
	case c >= mpInt8 && c <= mpInt64:
		return r.readSigned(c)
	}
	return 0, &typeError{"integer", c}
}

func (r *reader) readBool() (bool, error) {
	c, err := r.readByte()
	if err != nil {
		return false, err
	}
	switch c {
	case mpFalse:
		return false, nil
	case mpTrue:
		return true, nil
	}
	return false, &typeError{"bool", c}
}

// strLen decodes a str header whose format byte c was already read; ok is
// false when c is not a str format.
func (r *reader) strLen(c byte) (n uint64, ok bool, err error) {
	switch {
	case c&0xe0 == 0xa0:
		return uint64(c & 0x1f), true, nil
	case c == mpStr8:
		n, err = r.readBE(1)
	case c == mpStr16:
		n, err = r.readBE(2)
	case c == mpStr32:
		n, err = r.readBE(4)
	default:
		return 0, false, nil
	}
	return n, true, err
}

// readStr returns the bytes of a str (fixstr, str8, str16, str32), aliasing
// the input.
func (r *reader) readStr() ([]byte, error) {
	c, err := r.readByte()
	if err != nil {
		return nil, err
	}
	n, ok, err := r.strLen(c)
	if !ok {
		return nil, &typeError{"str", c}
	}
	if err != nil {
		return nil, err
	}
	return r.readN(n)
}

// readStrOrNil is readStr that also accepts nil (Rust's Option<String>::None).
func (r *reader) readStrOrNil() ([]byte, error) {
	if r.readNil() {
		return nil, nil
	}
	return r.readStr()
}

// readString reads a str or nil and copies it into the string arena.
func (r *reader) readString() (string, error) {
	// Fast path for fixstr, which almost every header name and value is.
	if r.off < len(r.b) {
		if c := r.b[r.off]; c&0xe0 == 0xa0 {
			if end := r.off + 1 + int(c&0x1f); end <= len(r.b) {
				p := r.b[r.off+1 : end]
				r.off = end
				return r.str(p), nil
			}
		}
	}
	p, err := r.readStrOrNil()
	if err != nil {
		return "", err
	}
	return r.str(p), nil
}

// str returns p, the bytes just consumed (ending at r.off), as a string that
// does not alias the input: a substring of the current window when p lies
// in it, else of a new window starting at p.
func (r *reader) str(p []byte) string {
	n := len(p)
	if n == 0 {
		return ""
	}
	start := r.off - n
	if start < 0 || &r.b[start] != &p[0] {
		return string(p) // not the last bytes read: no window applies
	}
	if start >= r.winOff && r.off <= r.winOff+len(r.win) {
		return r.win[start-r.winOff : r.off-r.winOff]
	}
	if n > arenaMaxStr {
		return string(p)
	}
	r.win, r.winOff = string(r.b[start:start+min(arenaChunk, len(r.b)-start)]), start
	return r.win[:n]
}

// copyBytes copies p into the current byte chunk and returns a slice whose
// capacity ends at its length, so appending to one value never overwrites the
// next.
func (r *reader) copyBytes(p []byte) []byte {
	n := len(p)
	if n == 0 {
		return nil
	}
	if n > arenaMaxStr {
		return append([]byte(nil), p...)
	}
	if cap(r.bytes)-len(r.bytes) < n {
		r.bytes = make([]byte, 0, min(arenaChunk, n+r.remaining()))
	}
	start := len(r.bytes)
	r.bytes = append(r.bytes, p...)
	return r.bytes[start:len(r.bytes):len(r.bytes)]
}

// binLen decodes a bin header whose format byte c was already read; ok is
// false when c is not a bin format.
func (r *reader) binLen(c byte) (n uint64, ok bool, err error) {
	switch c {
	case mpBin8:
		n, err = r.readBE(1)
	case mpBin16:
		n, err = r.readBE(2)
	case mpBin32:
		n, err = r.readBE(4)
	default:
		return 0, false, nil
	}
	return n, true, err
}

// readBin returns the bytes of a bin value, aliasing the input.
func (r *reader) readBin() ([]byte, error) {
	c, err := r.readByte()
	if err != nil {
		return nil, err
	}
	n, ok, err := r.binLen(c)
	if !ok {
		return nil, &typeError{"bin", c}
	}
	if err != nil {
		return nil, err
	}
	return r.readN(n)
}

// readBytes reads a byte field and appends it to dst. It accepts bin, nil
// (no bytes) and an array of integers 0..255, which is how rmp_serde writes a
// Vec<u8> without serde_bytes. On the returned slice, nil means empty.
func (r *reader) readBytes(dst []byte) ([]byte, error) {
	c, err := r.readByte()
	if err != nil {
		return dst, err
	}
	if c == mpNil {
		return dst, nil
	}
	if n, ok, err := r.binLen(c); ok {
		if err != nil {
			return dst, err
		}
		p, err := r.readN(n)
		if err != nil {
			return dst, err
		}
		return append(dst, p...), nil
	}
	r.off-- // let readArrayHeader see the format byte again
	n, err := r.readArrayHeader()
	if err != nil {
		if te, ok := err.(*typeError); ok {
			te.want = "bin, nil or array of bytes"
		}
		return dst, err
	}
	if cap(dst)-len(dst) < n {
		// n is at most the remaining input (readArrayHeader checks),
		// and each element takes at least one byte of it.
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}
	for i := range n {
		v, err := r.readUint(math.MaxUint8)
		if err != nil {
			return dst, fmt.Errorf("byte %d: %w", i, err)
		}
		dst = append(dst, byte(v))
	}
	return dst, nil
}

// readArrayHeader reads a fixarray/array16/array32 header. Each element takes
// at least one byte, so a count above the remaining input fails at once.
func (r *reader) readArrayHeader() (int, error) {
	c, err := r.readByte()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == mpArray16:
		n, err = r.readBE(2)
	case c == mpArray32:
		n, err = r.readBE(4)
	default:
		return 0, &typeError{"array", c}
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.remaining()) {
		return 0, fmt.Errorf("%w: array of %d elements, %d bytes left", errLength, n, r.remaining())
	}
	return int(n), nil
}

// readMapHeader reads a fixmap/map16/map32 header. Each entry takes at least
// two bytes, so a count above half the remaining input fails at once.
func (r *reader) readMapHeader() (int, error) {
	c, err := r.readByte()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x80:
		n = uint64(c & 0x0f)
	case c == mpMap16:
		n, err = r.readBE(2)
	case c == mpMap32:
		n, err = r.readBE(4)
	default:
		return 0, &typeError{"map", c}
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.remaining())/2 {
		return 0, fmt.Errorf("%w: map of %d entries, %d bytes left", errLength, n, r.remaining())
	}
	return int(n), nil
}

// readMapHeaderOrNil is readMapHeader that also accepts nil (ok false).
func (r *reader) readMapHeaderOrNil() (n int, ok bool, err error) {
	if r.readNil() {
		return 0, false, nil
	}
	n, err = r.readMapHeader()
	return n, err == nil, err
}

// readKey reads a map key. A key that is not a str is skipped and reported
// as ok false, so the caller skips its value as an unknown entry.
func (r *reader) readKey() (key []byte, ok bool, err error) {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c&0xe0 == 0xa0 || (c >= mpStr8 && c <= mpStr32) {
			key, err = r.readStr()
			return key, err == nil, err
		}
	}
	return nil, false, r.skip()
}

// skip steps over one value of any type, including nested arrays, maps and
// ext values. It counts the values still to skip instead of recursing; as
// each needs at least one byte, a count above the remaining input fails at
// once.
func (r *reader) skip() error {
	for pending := uint64(1); pending > 0; pending-- {
		if pending > uint64(r.remaining()) {
			if pending == 1 {
				return errTruncated
			}
			return fmt.Errorf("%w: %d values announced, %d bytes left", errLength, pending, r.remaining())
		}
		c := r.b[r.off]
		r.off++
		var n uint64 // payload bytes to step over
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
		case c <= 0x8f:
			pending += 2 * uint64(c&0x0f)
		case c <= 0x9f:
			pending += uint64(c & 0x0f)
		case c <= 0xbf:
			n = uint64(c & 0x1f)
		case c == mpNil || c == mpFalse || c == mpTrue:
		case c == mpBin8 || c == mpStr8:
			n, err = r.readBE(1)
		case c == mpBin16 || c == mpStr16:
			n, err = r.readBE(2)
		case c == mpBin32 || c == mpStr32:
			n, err = r.readBE(4)
		case c >= mpExt8 && c <= mpExt32:
			n, err = r.readBE(1 << (c - mpExt8))
			n++ // the ext type byte
		case c == mpFloat32:
			n = 4
		case c == mpFloat64:
			n = 8
		case c >= mpUint8 && c <= mpUint64:
			n = 1 << (c - mpUint8)
		case c >= mpInt8 && c <= mpInt64:
			n = 1 << (c - mpInt8)
		case c >= mpFixExt1 && c <= mpFixExt16:
			n = 1 + 1<<(c-mpFixExt1)
		case c == mpArray16 || c == mpArray32:
			var m uint64
			m, err = r.readBE(2 << (c - mpArray16))
			pending += m
		case c == mpMap16 || c == mpMap32:
			var m uint64
			m, err = r.readBE(2 << (c - mpMap16))
			pending += 2 * m
		default: // 0xc1, never used
			return &typeError{"a msgpack value", c}
		}
		if err != nil {
			return err
		}
		if _, err := r.readN(n); err != nil {
			return err
		}
	}
	return nil
}

// trailing fails when bytes follow the top-level value.
func (r *reader) trailing(field string) error {
	if n := r.remaining(); n > 0 {
		return &DecodeError{Field: field, Err: fmt.Errorf("%d trailing bytes after the message", n)}
	}
	return nil
}
