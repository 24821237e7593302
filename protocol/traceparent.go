package protocol

// traceparentLen is the length of a version-00 W3C traceparent:
// "00-{trace-id:32 hex}-{parent-id:16 hex}-{flags:2 hex}".
const traceparentLen = 55

// ValidTraceparent reports whether s is a traceparent header value an edge
// may continue (W3C Trace Context): the version-00 layout, or a future
// version's with more fields after it; lowercase hex; a version other than
// ff; non-zero trace and parent ids. Per the spec, an invalid value is
// ignored (a fresh trace starts), not repaired.
func ValidTraceparent(s string) bool {
	if len(s) < traceparentLen {
		return false
	}
	if len(s) > traceparentLen && (s[:2] == "00" || s[traceparentLen] != '-') {
		return false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	if !lowerHex(s[0:2]) || s[0:2] == "ff" || !lowerHex(s[3:35]) || !lowerHex(s[36:52]) || !lowerHex(s[53:55]) {
		return false
	}
	return !allZero(s[3:35]) && !allZero(s[36:52])
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
