package protocol

// The node's guest ABI refuses a header op (100 set, 101 remove, 402 add,
// 400 set and 401 remove upstream) whose name or value breaks these rules,
// and callers skip such an op in a reply from any other responder. One rule
// for both, so that a guest is refused exactly what a caller would drop,
// and hears of it where the bad value was written rather than as a 502
// from a proxy far away.

// ValidHeaderName reports whether name may name a header in a header op: an
// RFC 9110 token (§5.1), so that a name can neither carry a second header
// nor end the header block.
func ValidHeaderName[T ~string | ~[]byte](name T) bool {
	if len(name) == 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return false
		}
	}
	return true
}

// ValidHeaderValue reports whether v may be a header op's value: an RFC 9110
// field value (§5.5), which holds no control character but horizontal tab.
// CR, LF and NUL would split or end the header; the other controls
// (0x01-0x08, 0x0B-0x1F, 0x7F) pass Go's net/http server unchanged, and a
// strict proxy or CDN in front of the edge answers such a response with
// 502. obs-text (0x80-0xFF) is allowed, as RFC 9110 allows it and clients
// send it (Latin-1 file names). The empty value is allowed. This is the
// rule of golang.org/x/net/http/httpguts.ValidHeaderFieldValue, which
// net/http's client applies to every request header.
func ValidHeaderValue[T ~string | ~[]byte](v T) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c is an RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
