package abi

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/nylon-functions/nylon/protocol"
)

// valueKind says which field of value holds the data.
type valueKind uint8

const (
	absent  valueKind = iota
	str               // s
	bin               // b
	url2              // s + "?" + s2 (s2 non-empty)
	headers           // hs as a list
	pairs             // kvs as a list
)

// value is the answer to a read, resolved without copying: it points into the
// invocation (or the State's scratch) until it is copied to the guest.
type value struct {
	kind valueKind
	s    string
	s2   string
	b    []byte
	hs   []protocol.Header
	kvs  []protocol.KV
}

func strValue(s string) value { return value{kind: str, s: s} }
func binValue(b []byte) value { return value{kind: bin, b: b} }

// len is the value's full length in bytes.
func (v *value) len() int {
	switch v.kind {
	case str:
		return len(v.s)
	case bin:
		return len(v.b)
	case url2:
		return len(v.s) + 1 + len(v.s2)
	case headers:
		n := 0
		for _, h := range v.hs {
			n += len(h.Name) + len(h.Value) + 2
		}
		return n
	case pairs:
		n := 0
		for _, kv := range v.kvs {
			n += len(kv.Key) + len(kv.Value) + 2
		}
		return n
	}
	return 0
}

// copyTo writes the value into dst, which has room for len() bytes.
func (v *value) copyTo(dst []byte) {
	switch v.kind {
	case str:
		copy(dst, v.s)
	case bin:
		copy(dst, v.b)
	case url2:
		n := copy(dst, v.s)
		dst[n] = '?'
		copy(dst[n+1:], v.s2)
	case headers:
		for _, h := range v.hs {
			dst = appendPair(dst, h.Name, h.Value)
		}
	case pairs:
		for _, kv := range v.kvs {
			dst = appendPair(dst, kv.Key, kv.Value)
		}
	}
}

// appendPair writes "name\x00value\x00" at the start of dst and returns the
// rest of dst.
func appendPair(dst []byte, name, val string) []byte {
	n := copy(dst, name)
	dst[n] = protocol.ListSep
	n++
	n += copy(dst[n:], val)
	dst[n] = protocol.ListSep
	return dst[n+1:]
}

// read answers a read of method with key into buf: the value's full length,
// copied only when it fits; -1 when absent.
func (s *State) read(method uint32, key, buf []byte) int32 {
	v := s.lookup(method, key)
	if v.kind == absent {
		return -1
	}
	n := v.len()
	if n > int(^uint32(0)>>1) { // cannot be told in an i32; the input limit makes this unreachable
		return -1
	}
	if n <= len(buf) {
		v.copyTo(buf[:n])
	}
	return int32(n)
}

// lookup resolves method (with key) against the current invocation.
func (s *State) lookup(method uint32, key []byte) value {
	inv := s.inv
	if inv == nil {
		return value{}
	}
	req := &inv.Request
	resp := inv.Response
	ws := inv.WS
	switch method {
	case protocol.MethodGetPayload:
		switch s.phase {
		case protocol.PhaseEvent:
			if ws != nil {
				return binValue(ws.Payload)
			}
			return value{}
		case protocol.PhaseResponseBodyFilter:
			if resp != nil {
				return binValue(resp.Body)
			}
			return value{}
		}
		return binValue(req.Body)

	case protocol.ReadRequestFullBody:
		return binValue(req.Body)
	case protocol.ReadRequestHeader:
		if v, ok := headerValue(req.Headers, key); ok {
			return strValue(v)
		}
	case protocol.ReadRequestHeaders:
		return value{kind: headers, hs: req.Headers}
	case protocol.ReadRequestURL:
		if req.Query == "" {
			return strValue(req.Path)
		}
		return value{kind: url2, s: req.Path, s2: req.Query}
	case protocol.ReadRequestPath:
		return strValue(req.Path)
	case protocol.ReadRequestQuery:
		return strValue(req.Query)
	case protocol.ReadRequestParams:
		return value{kind: pairs, kvs: req.Params}
	case protocol.ReadRequestHost:
		return strValue(req.Host)
	case protocol.ReadRequestClientIP:
		return strValue(req.ClientIP)
	case protocol.ReadRequestMethod:
		return strValue(req.Method)
	case protocol.ReadRequestBytes:
		return s.number(int64(len(req.Body)))
	case protocol.ReadRequestTimestamp:
		return s.unsigned(req.Timestamp)
	case protocol.ReadRequestScheme:
		return strValue(req.Scheme)
	case protocol.ReadRequestParam:
		if v, ok := lookupKV(req.Params, key); ok {
			return strValue(v)
		}
	case protocol.ReadRequestQueryParam:
		if v, ok := queryParam(req.Query, key); ok {
			return strValue(v)
		}

	case protocol.ReadConfig:
		if len(key) == 0 {
			return value{kind: pairs, kvs: inv.Config}
		}
		if v, ok := lookupKV(inv.Config, key); ok {
			return strValue(v)
		}
	case protocol.ReadRequestID:
		if s.reqID.IsZero() {
			return value{}
		}
		return binValue(s.reqID.AppendTo(s.scratch[:0]))

	case protocol.ReadResponseFullBody:
		if resp != nil {
			return binValue(resp.Body)
		}
	case protocol.ReadResponseStatus:
		if resp != nil {
			return s.number(int64(resp.Status))
		}
	case protocol.ReadResponseBytes:
		if resp != nil {
			return s.number(int64(len(resp.Body)))
		}
	case protocol.ReadResponseHeaders:
		if resp != nil {
			return value{kind: headers, hs: resp.Headers}
		}
	case protocol.ReadResponseHeader:
		if resp != nil {
			if v, ok := headerValue(resp.Headers, key); ok {
				return strValue(v)
			}
		}
	case protocol.ReadResponseDuration:
		if resp != nil {
			return s.unsigned(resp.DurationMs)
		}
	case protocol.ReadResponseError:
		if resp != nil && resp.Error != "" {
			return strValue(resp.Error)
		}
	case protocol.ReadBodyChunkInfo:
		if resp != nil && s.phase == protocol.PhaseResponseBodyFilter {
			b := strconv.AppendUint(s.scratch[:0], uint64(resp.ChunkIndex), 10)
			last := byte('0')
			if resp.LastChunk {
				last = '1'
			}
			return binValue(append(b, ',', last))
		}

	case protocol.ReadWSConnectionID:
		if ws != nil {
			return strValue(ws.ConnectionID)
		}
	case protocol.ReadWSEvent:
		if ws != nil {
			return strValue(string(ws.Kind))
		}
	case protocol.ReadWSCloseCode:
		if ws != nil && ws.Kind == protocol.WSClose {
			return s.number(int64(ws.CloseCode))
		}
	case protocol.ReadWSCloseReason:
		if ws != nil && ws.Kind == protocol.WSClose {
			return strValue(ws.CloseReason)
		}
	}
	return value{}
}

func (s *State) number(n int64) value {
	return binValue(strconv.AppendInt(s.scratch[:0], n, 10))
}

func (s *State) unsigned(n uint64) value {
	return binValue(strconv.AppendUint(s.scratch[:0], n, 10))
}

// headerValue is protocol.HeaderValue for a key in guest memory, without
// converting it to a string. HTTP field names are ASCII, so ASCII case
// folding is exact.
func headerValue(hs []protocol.Header, name []byte) (string, bool) {
	if len(name) == 0 {
		return "", false
	}
	for _, h := range hs {
		if equalFoldASCII(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

func equalFoldASCII(s string, b []byte) bool {
	if len(s) != len(b) {
		return false
	}
	for i := 0; i < len(s); i++ {
		x, y := s[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func lookupKV(kvs []protocol.KV, key []byte) (string, bool) {
	if len(key) == 0 {
		return "", false
	}
	for _, kv := range kvs {
		if kv.Key == string(key) { // no allocation: the compiler compares in place
			return kv.Value, true
		}
	}
	return "", false
}

// queryParam returns the first value of key in the raw query, decoded like
// net/url.ParseQuery does, so that a guest reading one parameter finds what
// one parsing the whole query (READ_REQUEST_QUERY) finds. Pairs ParseQuery
// skips are skipped: those that do not decode, and (since Go 1.17) those
// holding a ';', which older parsers took for a separator too: for
// "a=1;b=2" there is no a, not a = "1;b=2". Only a key or value holding
// escapes allocates.
func queryParam(query string, key []byte) (string, bool) {
	if len(key) == 0 {
		return "", false
	}
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		if k != string(key) {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				continue
			}
			v = dv
		}
		return v, true
	}
	return "", false
}
