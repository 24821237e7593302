package protocol

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// AppendInvocation appends inv's wire form (see Invocation) to b and returns
// the extended buffer. Every key is written, in the order the type docs list
// them; an absent Response or WS is nil; HTTPResponse.Error is nil when
// empty, like the envelope's error; byte fields are always bin.
// HTTPResponse.Status travels as the Rust peer's u16, so readers reject a
// Status outside 0..65535.
func AppendInvocation(b []byte, inv *Invocation) []byte {
	b = grow(b, invocationSize(inv))
	b = append(b, 0x84)
	b = append(b, "\xa7request"...)
	b = appendHTTPRequest(b, &inv.Request)
	b = append(b, "\xa8response"...)
	if inv.Response == nil {
		b = appendNil(b)
	} else {
		b = appendHTTPResponse(b, inv.Response)
	}
	b = append(b, "\xa2ws"...)
	if inv.WS == nil {
		b = appendNil(b)
	} else {
		b = appendWSEvent(b, inv.WS)
	}
	b = append(b, "\xa6config"...)
	return appendKVMap(b, inv.Config)
}

func appendHTTPRequest(b []byte, q *HTTPRequest) []byte {
	b = append(b, 0x8a)
	b = append(b, "\xa6method"...)
	b = appendStr(b, q.Method)
	b = append(b, "\xa6scheme"...)
	b = appendStr(b, q.Scheme)
	b = append(b, "\xa4host"...)
	b = appendStr(b, q.Host)
	b = append(b, "\xa4path"...)
	b = appendStr(b, q.Path)
	b = append(b, "\xa5query"...)
	b = appendStr(b, q.Query)
	b = append(b, "\xa9client_ip"...)
	b = appendStr(b, q.ClientIP)
	b = append(b, "\xa7headers"...)
	b = appendHeaders(b, q.Headers)
	b = append(b, "\xa4body"...)
	b = appendBin(b, q.Body)
	b = append(b, "\xa6params"...)
	b = appendKVMap(b, q.Params)
	b = append(b, "\xa9timestamp"...)
	return appendUint(b, q.Timestamp)
}

func appendHTTPResponse(b []byte, s *HTTPResponse) []byte {
	b = append(b, 0x87)
	b = append(b, "\xa6status"...)
	b = appendInt(b, int64(s.Status))
	b = append(b, "\xa7headers"...)
	b = appendHeaders(b, s.Headers)
	b = append(b, "\xa4body"...)
	b = appendBin(b, s.Body)
	b = append(b, "\xabchunk_index"...)
	b = appendUint(b, uint64(s.ChunkIndex))
	b = append(b, "\xaalast_chunk"...)
	b = appendBool(b, s.LastChunk)
	b = append(b, "\xabduration_ms"...)
	b = appendUint(b, s.DurationMs)
	b = append(b, "\xa5error"...)
	return appendOptStr(b, s.Error)
}

func appendWSEvent(b []byte, w *WSEvent) []byte {
	b = append(b, 0x85)
	b = append(b, "\xa4kind"...)
	b = appendStr(b, string(w.Kind))
	b = append(b, "\xadconnection_id"...)
	b = appendStr(b, w.ConnectionID)
	b = append(b, "\xa7payload"...)
	b = appendBin(b, w.Payload)
	b = append(b, "\xaaclose_code"...)
	b = appendUint(b, uint64(w.CloseCode))
	b = append(b, "\xacclose_reason"...)
	return appendStr(b, w.CloseReason)
}

// invocationSize bounds the encoded size of inv, so that AppendInvocation
// into a nil or small buffer allocates once.
func invocationSize(inv *Invocation) int {
	q := &inv.Request
	n := 160 + strSize(len(q.Method)) + strSize(len(q.Scheme)) + strSize(len(q.Host)) +
		strSize(len(q.Path)) + strSize(len(q.Query)) + strSize(len(q.ClientIP)) +
		headersSize(q.Headers) + binSize(len(q.Body)) + kvsSize(q.Params) + kvsSize(inv.Config)
	if s := inv.Response; s != nil {
		n += 100 + headersSize(s.Headers) + binSize(len(s.Body)) + strSize(len(s.Error))
	}
	if w := inv.WS; w != nil {
		n += 80 + strSize(len(w.Kind)) + strSize(len(w.ConnectionID)) + binSize(len(w.Payload)) +
			strSize(len(w.CloseReason))
	}
	return n
}

func headersSize(hs []Header) int {
	n := 5
	for i := range hs {
		n += 1 + strSize(len(hs[i].Name)) + strSize(len(hs[i].Value))
	}
	return n
}

func kvsSize(kvs []KV) int {
	n := 5
	for i := range kvs {
		n += strSize(len(kvs[i].Key)) + strSize(len(kvs[i].Value))
	}
	return n
}

// DecodeInvocation decodes an invocation context (PluginRequest.Data) from b
// into inv, overwriting every field. It reuses the capacity of inv's slices
// (headers, bodies, params, config) and inv's Response and WS structs when
// the message has them, so callers can pool Invocations; strings are copied
// out of b, which is not retained.
//
// Missing keys leave zero values, nil is accepted for every map, str and byte
// field, and unknown keys are skipped. Error fields are paths under "data",
// e.g. "data.request.headers[3]", since an invocation travels as a request's
// data.
func DecodeInvocation(b []byte, inv *Invocation) error {
	r := reader{b: b}
	if err := decodeInvocation(&r, inv); err != nil {
		return err
	}
	return r.trailing("data")
}

func decodeInvocation(r *reader, inv *Invocation) error {
	prevResp, prevWS := inv.Response, inv.WS
	inv.Response, inv.WS = nil, nil
	inv.Config = inv.Config[:0]
	resetHTTPRequest(&inv.Request)

	n, ok, err := r.readMapHeaderOrNil()
	if err != nil {
		return &DecodeError{Field: "data", Err: err}
	}
	if !ok {
		return nil
	}
	for range n {
		key, ok, err := r.readKey()
		if err != nil {
			return &DecodeError{Field: "data", Err: fmt.Errorf("key: %w", err)}
		}
		if !ok {
			key = nil
		}
		switch string(key) {
		case "request":
			resetHTTPRequest(&inv.Request) // a repeated key decodes from scratch
			var m int
			if m, ok, err = r.readMapHeaderOrNil(); err != nil {
				return &DecodeError{Field: "data.request", Err: err}
			}
			if ok {
				err = decodeHTTPRequest(r, &inv.Request, m)
			}
		case "response":
			// Written out rather than shared through a func value: an
			// indirect call would move the reader to the heap.
			var m int
			if m, ok, err = r.readMapHeaderOrNil(); err != nil {
				return &DecodeError{Field: "data.response", Err: err}
			}
			inv.Response = nil
			if ok {
				inv.Response = reuse(prevResp)
				err = decodeHTTPResponse(r, inv.Response, m)
			}
		case "ws":
			var m int
			if m, ok, err = r.readMapHeaderOrNil(); err != nil {
				return &DecodeError{Field: "data.ws", Err: err}
			}
			inv.WS = nil
			if ok {
				inv.WS = reuse(prevWS)
				err = decodeWSEvent(r, inv.WS, m)
			}
		case "config":
			inv.Config, err = r.readKVMap(inv.Config[:0], "data.config")
		default:
			if err = r.skip(); err != nil {
				err = &DecodeError{Field: "data." + keyName(key), Err: err}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// reuse returns the caller's pooled part to decode into, else a new one.
func reuse[T any](prev *T) *T {
	if prev != nil {
		return prev
	}
	return new(T)
}

// resetHTTPRequest zeroes q but keeps its slices' capacity.
func resetHTTPRequest(q *HTTPRequest) {
	*q = HTTPRequest{Headers: q.Headers[:0], Body: q.Body[:0], Params: q.Params[:0]}
}

// decodeHTTPRequest decodes the n entries of a request map into q, which
// the caller has reset.
func decodeHTTPRequest(r *reader, q *HTTPRequest, n int) error {
	for range n {
		key, ok, err := r.readKey()
		if err != nil {
			return &DecodeError{Field: "data.request", Err: fmt.Errorf("key: %w", err)}
		}
		if !ok {
			key = nil
		}
		switch string(key) {
		case "method":
			q.Method, err = r.readString()
		case "scheme":
			q.Scheme, err = r.readString()
		case "host":
			q.Host, err = r.readString()
		case "path":
			q.Path, err = r.readString()
		case "query":
			q.Query, err = r.readString()
		case "client_ip":
			q.ClientIP, err = r.readString()
		case "headers":
			q.Headers, err = r.readHeaders(q.Headers[:0], "data.request.headers")
			if err != nil {
				return err
			}
		case "body":
			q.Body, err = r.readBytes(q.Body[:0])
		case "params":
			q.Params, err = r.readKVMap(q.Params[:0], "data.request.params")
			if err != nil {
				return err
			}
		case "timestamp":
			q.Timestamp, err = r.readUint(math.MaxUint64)
		default:
			err = r.skip()
		}
		if err != nil {
			return &DecodeError{Field: "data.request." + keyName(key), Err: err}
		}
	}
	return nil
}

// decodeHTTPResponse decodes the n entries of a response map into s,
// reusing its slices' capacity.
func decodeHTTPResponse(r *reader, s *HTTPResponse, n int) error {
	*s = HTTPResponse{Headers: s.Headers[:0], Body: s.Body[:0]}
	for range n {
		key, ok, err := r.readKey()
		if err != nil {
			return &DecodeError{Field: "data.response", Err: fmt.Errorf("key: %w", err)}
		}
		if !ok {
			key = nil
		}
		var v uint64
		switch string(key) {
		case "status":
			// u16 like the Rust peer's http::StatusCode.
			v, err = r.readUint(math.MaxUint16)
			s.Status = int(v)
		case "headers":
			s.Headers, err = r.readHeaders(s.Headers[:0], "data.response.headers")
			if err != nil {
				return err
			}
		case "body":
			s.Body, err = r.readBytes(s.Body[:0])
		case "chunk_index":
			v, err = r.readUint(math.MaxUint32)
			s.ChunkIndex = uint32(v)
		case "last_chunk":
			s.LastChunk, err = r.readBool()
		case "duration_ms":
			s.DurationMs, err = r.readUint(math.MaxUint64)
		case "error":
			s.Error, err = r.readString()
		default:
			err = r.skip()
		}
		if err != nil {
			return &DecodeError{Field: "data.response." + keyName(key), Err: err}
		}
	}
	return nil
}

// decodeWSEvent decodes the n entries of a ws map into w, reusing its
// payload's capacity. An unknown kind is kept as is (EventNumber 0), so a
// newer peer's event kinds do not fail the whole message.
func decodeWSEvent(r *reader, w *WSEvent, n int) error {
	*w = WSEvent{Payload: w.Payload[:0]}
	for range n {
		key, ok, err := r.readKey()
		if err != nil {
			return &DecodeError{Field: "data.ws", Err: fmt.Errorf("key: %w", err)}
		}
		if !ok {
			key = nil
		}
		switch string(key) {
		case "kind":
			var p []byte
			if p, err = r.readStrOrNil(); err == nil {
				w.Kind = wsKind(r, p)
			}
		case "connection_id":
			w.ConnectionID, err = r.readString()
		case "payload":
			w.Payload, err = r.readBytes(w.Payload[:0])
		case "close_code":
			var v uint64
			v, err = r.readUint(math.MaxUint16)
			w.CloseCode = uint16(v)
		case "close_reason":
			w.CloseReason, err = r.readString()
		default:
			err = r.skip()
		}
		if err != nil {
			return &DecodeError{Field: "data.ws." + keyName(key), Err: err}
		}
	}
	return nil
}

// wsKind returns the constant for the known kinds, which costs no copy.
func wsKind(r *reader, p []byte) WSEventKind {
	switch string(p) {
	case "open":
		return WSOpen
	case "text":
		return WSText
	case "binary":
		return WSBinary
	case "close":
		return WSClose
	}
	return WSEventKind(r.str(p))
}

// readHeaders reads [[name, value], ...] and appends to dst. Failures name
// the element: path[i].
func (r *reader) readHeaders(dst []Header, path string) ([]Header, error) {
	if r.readNil() {
		return dst, nil
	}
	n, err := r.readArrayHeader()
	if err != nil {
		return dst, &DecodeError{Field: path, Err: err}
	}
	dst = slices.Grow(dst, min(n, preallocCap))
	for i := range n {
		var h Header
		m, err := r.readArrayHeader()
		if err == nil && m != 2 {
			err = fmt.Errorf("want [name, value], got %d elements", m)
		}
		if err == nil {
			h.Name, err = r.readString()
		}
		if err == nil {
			h.Value, err = r.readString()
		}
		if err != nil {
			return dst, &DecodeError{Field: path + "[" + strconv.Itoa(i) + "]", Err: err}
		}
		dst = append(dst, h)
	}
	return dst, nil
}

// readKVMap reads a str->str map (nil is empty; nil values are "") and
// appends its entries to dst in wire order. Failures name the entry: path[i].
func (r *reader) readKVMap(dst []KV, path string) ([]KV, error) {
	n, _, err := r.readMapHeaderOrNil()
	if err != nil {
		return dst, &DecodeError{Field: path, Err: err}
	}
	dst = slices.Grow(dst, min(n, preallocCap))
	for i := range n {
		var kv KV
		var p []byte
		p, err = r.readStr()
		if err == nil {
			kv.Key = r.str(p)
			kv.Value, err = r.readString()
		}
		if err != nil {
			return dst, &DecodeError{Field: path + "[" + strconv.Itoa(i) + "]", Err: err}
		}
		dst = append(dst, kv)
	}
	return dst, nil
}
