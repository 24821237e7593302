package protocol

import (
	"fmt"
	"math"
)

// The envelope's map keys with their fixstr headers, in the Rust structs'
// field order (rmp_serde writes fields in declaration order).
const (
	keyVersion   = "\xa7version"
	keyRequestID = "\xaarequest_id"
	keySessionID = "\xaasession_id"
	keyPhase     = "\xa5phase"
	keyMethod    = "\xa6method"
	keyData      = "\xa4data"
	keyTimestamp = "\xa9timestamp"
	keyAction    = "\xa6action"
	keyError     = "\xa5error"
)

// AppendMsgpack appends the request's wire form to b and returns the
// extended buffer: a 7-entry map {version, request_id, session_id, phase,
// method, data, timestamp}, byte for byte what rmp_serde::to_vec_named
// writes for the Rust struct with serde_bytes on data. Fields are written as
// they are; set Version to protocol.Version.
func (r *PluginRequest) AppendMsgpack(b []byte) []byte {
	b = grow(b, 100+len(r.Data))
	b = append(b, 0x87)
	b = append(b, keyVersion...)
	b = appendUint(b, uint64(r.Version))
	b = appendRequestID(b, r.RequestID)
	b = append(b, keySessionID...)
	b = appendUint(b, uint64(r.SessionID))
	b = append(b, keyPhase...)
	b = appendUint(b, uint64(r.Phase))
	b = append(b, keyMethod...)
	b = appendUint(b, uint64(r.Method))
	b = append(b, keyData...)
	b = appendBin(b, r.Data)
	b = append(b, keyTimestamp...)
	return appendUint(b, r.Timestamp)
}

// AppendMsgpack appends the response's wire form to b: a 6-entry map
// {version, request_id, session_id, action, data, error} with action as the
// bare variant name and error nil when empty. Error is written as valid
// UTF-8 (see appendText): a Rust caller reads it as a String.
func (r *PluginResponse) AppendMsgpack(b []byte) []byte {
	b = grow(b, 80+len(r.Data)+len(r.Error))
	b = append(b, 0x86)
	b = append(b, keyVersion...)
	b = appendUint(b, uint64(r.Version))
	b = appendRequestID(b, r.RequestID)
	b = append(b, keySessionID...)
	b = appendUint(b, uint64(r.SessionID))
	b = append(b, keyAction...)
	b = appendStr(b, r.Action.String())
	b = append(b, keyData...)
	b = appendBin(b, r.Data)
	b = append(b, keyError...)
	return appendOptText(b, r.Error)
}

// appendRequestID writes the key and the u128 as rmp_serde does: bin8 of 16
// big-endian bytes.
func appendRequestID(b []byte, id RequestID) []byte {
	b = append(b, keyRequestID...)
	b = append(b, mpBin8, 16)
	return append(b, id[:]...)
}

// MarshalMsgpack implements msgpack/v5's Marshaler with AppendMsgpack, so
// msgpack.Marshal writes the same bytes. It has a value receiver so that
// marshaling a PluginRequest value (not only a pointer) uses it too.
func (r PluginRequest) MarshalMsgpack() ([]byte, error) { return r.AppendMsgpack(nil), nil }

// UnmarshalMsgpack implements msgpack/v5's Unmarshaler with DecodeRequest.
func (r *PluginRequest) UnmarshalMsgpack(b []byte) error { return DecodeRequest(b, r) }

// MarshalMsgpack implements msgpack/v5's Marshaler with AppendMsgpack.
func (r PluginResponse) MarshalMsgpack() ([]byte, error) { return r.AppendMsgpack(nil), nil }

// UnmarshalMsgpack implements msgpack/v5's Unmarshaler with DecodeResponse.
func (r *PluginResponse) UnmarshalMsgpack(b []byte) error { return DecodeResponse(b, r) }

// DecodeRequest decodes one request envelope from b into req, overwriting
// every field. req.Data is copied into req.Data's existing capacity, so a
// pooled PluginRequest decodes without allocating; b is not retained.
//
// Readers are lenient where peers differ and strict where values matter:
// keys may come in any order and unknown keys of any type are skipped;
// integers may use any width; data may be bin, nil or an array of bytes.
// A missing key leaves the zero value, which for version means rejection.
// Every failure is a *DecodeError naming the field; a version outside
// MinVersion..MaxReadableVersion wraps ErrUnsupportedVersion.
func DecodeRequest(b []byte, req *PluginRequest) error {
	r := reader{b: b}
	*req = PluginRequest{Data: req.Data[:0]}
	seen, err := decodeRequestFields(&r, req)
	return finishEnvelope(&r, "request", req.Version, seen, err)
}

// finishEnvelope turns the outcome of decoding an envelope's fields into
// DecodeRequest's and DecodeResponse's result: trailing bytes and the
// version range are checked once the fields decoded.
func finishEnvelope(r *reader, what string, version uint16, versionSeen bool, err error) error {
	if err != nil {
		// A field that fails to decode in a message of an unknown
		// version is better reported as the version mismatch.
		if versionSeen && !readableVersion(version) {
			return versionError(uint64(version))
		}
		return err
	}
	if err := r.trailing(what); err != nil {
		return err
	}
	if !readableVersion(version) {
		return versionError(uint64(version))
	}
	return nil
}

func decodeRequestFields(r *reader, req *PluginRequest) (versionSeen bool, err error) {
	n, err := r.readMapHeader()
	if err != nil {
		return false, &DecodeError{Field: "request", Err: err}
	}
	for range n {
		key, ok, err := r.readKey()
		if err != nil {
			return versionSeen, &DecodeError{Field: "request", Err: fmt.Errorf("key: %w", err)}
		}
		if !ok {
			key = nil // a non-str key: skip its value below
		}
		var v uint64
		switch string(key) {
		case "version":
			v, err = r.readUint(math.MaxUint64)
			if err == nil && v > math.MaxUint16 {
				return true, versionError(v)
			}
			req.Version, versionSeen = uint16(v), err == nil
		case "request_id":
			req.RequestID, err = r.readRequestID()
		case "session_id":
			v, err = r.readUint(math.MaxUint32)
			req.SessionID = uint32(v)
		case "phase":
			v, err = r.readUint(math.MaxUint64)
			if err == nil && !Phase(min(v, math.MaxUint8)).Valid() {
				err = fmt.Errorf("unknown phase %d", v)
			}
			req.Phase = Phase(v)
		case "method":
			v, err = r.readUint(math.MaxUint32)
			req.Method = uint32(v)
		case "data":
			req.Data, err = r.readBytes(req.Data[:0])
		case "timestamp":
			req.Timestamp, err = r.readUint(math.MaxUint64)
		default:
			err = r.skip()
		}
		if err != nil {
			return versionSeen, &DecodeError{Field: keyName(key), Err: err}
		}
	}
	return versionSeen, nil
}

// DecodeResponse decodes one response envelope from b into resp, overwriting
// every field, with the same rules as DecodeRequest. action must be "Next",
// "End" or "Error"; error may be nil or a str.
func DecodeResponse(b []byte, resp *PluginResponse) error {
	r := reader{b: b}
	*resp = PluginResponse{Data: resp.Data[:0]}
	seen, err := decodeResponseFields(&r, resp)
	return finishEnvelope(&r, "response", resp.Version, seen, err)
}

func decodeResponseFields(r *reader, resp *PluginResponse) (versionSeen bool, err error) {
	n, err := r.readMapHeader()
	if err != nil {
		return false, &DecodeError{Field: "response", Err: err}
	}
	for range n {
		key, ok, err := r.readKey()
		if err != nil {
			return versionSeen, &DecodeError{Field: "response", Err: fmt.Errorf("key: %w", err)}
		}
		if !ok {
			key = nil
		}
		var v uint64
		switch string(key) {
		case "version":
			v, err = r.readUint(math.MaxUint64)
			if err == nil && v > math.MaxUint16 {
				return true, versionError(v)
			}
			resp.Version, versionSeen = uint16(v), err == nil
		case "request_id":
			resp.RequestID, err = r.readRequestID()
		case "session_id":
			v, err = r.readUint(math.MaxUint32)
			resp.SessionID = uint32(v)
		case "action":
			var p []byte
			if p, err = r.readStr(); err == nil {
				resp.Action, err = parseActionBytes(p)
			}
		case "data":
			resp.Data, err = r.readBytes(resp.Data[:0])
		case "error":
			var p []byte
			p, err = r.readStrOrNil()
			resp.Error = string(p)
		default:
			err = r.skip()
		}
		if err != nil {
			return versionSeen, &DecodeError{Field: keyName(key), Err: err}
		}
	}
	return versionSeen, nil
}

// readRequestID reads the u128 request id: a bin of exactly 16 bytes.
func (r *reader) readRequestID() (RequestID, error) {
	var id RequestID
	p, err := r.readBin()
	if err != nil {
		return id, err
	}
	if len(p) != len(id) {
		return id, fmt.Errorf("want 16 bytes, got %d", len(p))
	}
	copy(id[:], p)
	return id, nil
}

// parseActionBytes is ParseAction without converting p to a string first.
func parseActionBytes(p []byte) (Action, error) {
	switch string(p) {
	case "Next":
		return ActionNext, nil
	case "End":
		return ActionEnd, nil
	case "Error":
		return ActionError, nil
	}
	return 0, fmt.Errorf("unknown action %q", p)
}

func readableVersion(v uint16) bool { return v >= MinVersion && v <= MaxReadableVersion }

func versionError(v uint64) error {
	return &DecodeError{Field: "version", Err: fmt.Errorf("%w: %d (this reader accepts %d..%d)",
		ErrUnsupportedVersion, v, MinVersion, MaxReadableVersion)}
}

// keyName renders a map key for an error path: as is when it is plain
// printable ASCII, quoted otherwise; nil stands for a key that was not a str.
func keyName(key []byte) string {
	if key == nil {
		return "(non-string key)"
	}
	for _, c := range key {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '.' || c == '[' {
			return fmt.Sprintf("%q", key)
		}
	}
	if len(key) == 0 {
		return `""`
	}
	return string(key)
}
