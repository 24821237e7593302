package sdk

// Header is a set of HTTP headers, keyed by canonical name ("Content-Type"),
// with the values in the order received. It has the shape of net/http's
// Header without pulling net/http into every module.
type Header map[string][]string

// Get returns the first value of name (any case), or "".
func (h Header) Get(name string) string {
	if v := h[CanonicalHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// lookup is Get that also reports whether name has a value.
func (h Header) lookup(name string) (string, bool) {
	if v := h[CanonicalHeaderKey(name)]; len(v) > 0 {
		return v[0], true
	}
	return "", false
}

// Values returns every value of name (any case).
func (h Header) Values(name string) []string { return h[CanonicalHeaderKey(name)] }

// Add appends value to name.
func (h Header) Add(name, value string) {
	k := CanonicalHeaderKey(name)
	h[k] = append(h[k], value)
}

// Set replaces the values of name with value.
func (h Header) Set(name, value string) { h[CanonicalHeaderKey(name)] = []string{value} }

// Del removes name.
func (h Header) Del(name string) { delete(h, CanonicalHeaderKey(name)) }

// CanonicalHeaderKey returns name in canonical form: the first letter and
// each letter after a hyphen upper case, the rest lower case
// ("content-type" -> "Content-Type"). A name with a character that is not
// valid in a header name is returned unchanged, as net/textproto does.
func CanonicalHeaderKey(name string) string {
	upper := true
	canonical := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !validHeaderByte(c) {
			return name
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		return name
	}
	b := []byte(name)
	upper = true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return string(b)
}

// validHeaderByte reports whether c may appear in a header name (an RFC 9110
// token character).
func validHeaderByte(c byte) bool {
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
