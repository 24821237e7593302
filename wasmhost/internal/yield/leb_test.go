package yield

import "testing"

// The LEB128 readers must accept exactly what wazero accepts, with the same
// length (and, for indices and block types, the same value). These cases
// are at the edges of wazero's internal/leb128 rules.
func TestLEB(t *testing.T) {
	u32 := []struct {
		in   []byte
		v    uint32
		n    int
		okay bool
	}{
		{[]byte{0x00}, 0, 1, true},
		{[]byte{0x80, 0x00}, 0, 2, true}, // overlong is fine
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 0xffffffff, 5, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, 0, 0, false}, // bit 32
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 0, 0, false},
		{[]byte{0x80}, 0, 0, false},
	}
	for _, c := range u32 {
		v, next, ok := readU32(c.in, 0)
		if ok != c.okay || (ok && (v != c.v || next != c.n)) {
			t.Errorf("readU32(% x) = %d, %d, %v", c.in, v, next, ok)
		}
	}
	s32 := []struct {
		in   []byte
		okay bool
	}{
		{[]byte{0x7f}, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, true}, // -1
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x38}, true}, // wazero ignores bit 6 (found by FuzzInstrumentBody)
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x08}, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x10}, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x40}, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, false},
	}
	for _, c := range s32 {
		if _, ok := skipS32(c.in, 0); ok != c.okay {
			t.Errorf("skipS32(% x) ok %v, want %v", c.in, ok, c.okay)
		}
	}
	s64 := []struct {
		in   []byte
		okay bool
	}{
		{append(bytesOf(0xff, 9), 0x7f), true},
		{append(bytesOf(0xff, 9), 0x3f), true},
		{append(bytesOf(0xff, 9), 0x01), false},
		{append(bytesOf(0x80, 9), 0x00), true},
		{append(bytesOf(0x80, 9), 0x40), true},
		{append(bytesOf(0x80, 9), 0x02), false},
		{append(bytesOf(0x80, 10), 0x00), false},
	}
	for _, c := range s64 {
		if _, ok := skipS64(c.in, 0); ok != c.okay {
			t.Errorf("skipS64(% x) ok %v, want %v", c.in, ok, c.okay)
		}
	}
	s33 := []struct {
		in   []byte
		v    int64
		n    int
		okay bool
	}{
		{[]byte{0x40}, -64, 1, true},
		{[]byte{0x7f}, -1, 1, true},
		{[]byte{0xc0, 0x7f}, -64, 2, true},
		{[]byte{0x05}, 5, 1, true},
		{[]byte{0x85, 0x80, 0x80, 0x80, 0x00}, 5, 5, true},
		{[]byte{0xc0, 0xff, 0xff, 0xff, 0xff, 0x0b}, -64, 5, true}, // wazero stops after 5 bytes
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x20}, 0, 0, false},
	}
	for _, c := range s33 {
		v, next, ok := readS33(c.in, 0)
		if ok != c.okay || (ok && (v != c.v || next != c.n)) {
			t.Errorf("readS33(% x) = %d, %d, %v", c.in, v, next, ok)
		}
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}
