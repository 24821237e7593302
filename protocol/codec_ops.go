package protocol

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// AppendOps appends the wire form of ops (PluginResponse.Data) to b: an
// array of maps {"op": code, "key": str, "value": bin, "num": int}, every
// key written, in order. Keys are written as valid UTF-8 (see appendText).
func AppendOps(b []byte, ops []Op) []byte {
	n := 5
	for i := range ops {
		n += 40 + len(ops[i].Key) + len(ops[i].Value)
	}
	b = grow(b, n)
	b = appendArrayHeader(b, len(ops))
	for i := range ops {
		op := &ops[i]
		b = append(b, 0x84)
		b = append(b, "\xa2op"...)
		b = appendUint(b, uint64(op.Code))
		b = append(b, "\xa3key"...)
		b = appendText(b, op.Key)
		b = append(b, "\xa5value"...)
		b = appendBin(b, op.Value)
		b = append(b, "\xa3num"...)
		b = appendInt(b, op.Num)
	}
	return b
}

// DecodeOps decodes an op list from b and appends the ops to ops, returning
// the extended slice. Empty input and nil decode to no ops, since a
// response's data is optional. Keys and values are copied out of b (into
// shared chunks, a few allocations per call), b is not retained, and the
// elements already in ops are not touched. On error the ops slice is
// returned with its original length.
//
// Missing keys leave zero values, nil is accepted for key and value, and
// unknown keys are skipped. Error fields are paths under "data", e.g.
// "data[2].num".
func DecodeOps(b []byte, ops []Op) ([]Op, error) {
	if len(b) == 0 {
		return ops, nil
	}
	r := reader{b: b}
	n0 := len(ops)
	ops, err := decodeOps(&r, ops)
	if err == nil {
		err = r.trailing("data")
	}
	if err != nil {
		clear(ops[n0:])
		return ops[:n0], err
	}
	return ops, nil
}

func decodeOps(r *reader, ops []Op) ([]Op, error) {
	if r.readNil() {
		return ops, nil
	}
	n, err := r.readArrayHeader()
	if err != nil {
		return ops, &DecodeError{Field: "data", Err: err}
	}
	ops = slices.Grow(ops, min(n, preallocCap))
	for i := range n {
		var op Op
		if err := r.decodeOp(&op, i); err != nil {
			return ops, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func (r *reader) decodeOp(op *Op, i int) error {
	n, err := r.readMapHeader()
	if err != nil {
		return &DecodeError{Field: "data[" + strconv.Itoa(i) + "]", Err: err}
	}
	for range n {
		key, ok, err := r.readKey()
		if err != nil {
			return &DecodeError{Field: "data[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("key: %w", err)}
		}
		if !ok {
			key = nil
		}
		switch string(key) {
		case "op":
			var v uint64
			v, err = r.readUint(math.MaxUint32)
			op.Code = uint32(v)
		case "key":
			op.Key, err = r.readString()
		case "value":
			var p []byte
			if p, err = r.readValue(); err == nil {
				op.Value = r.copyBytes(p)
			}
		case "num":
			op.Num, err = r.readInt()
		default:
			err = r.skip()
		}
		if err != nil {
			return &DecodeError{Field: "data[" + strconv.Itoa(i) + "]." + keyName(key), Err: err}
		}
	}
	return nil
}

// readValue reads a byte field like readBytes but returns a bin's bytes
// aliasing the input, for the caller to copy where it wants them. The array
// form is decoded into a fresh slice.
func (r *reader) readValue() ([]byte, error) {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c >= mpBin8 && c <= mpBin32 {
			return r.readBin()
		}
	}
	return r.readBytes(nil)
}
