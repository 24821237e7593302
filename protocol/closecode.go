package protocol

// ValidCloseCode reports whether op 303 (WebSocket close) may carry code:
// the codes an endpoint may send in a close frame (RFC 6455 7.4), 1000-1003,
// 1007-1014 and 3000-4999. 1004 is reserved, 1005 and 1006 only report a
// missing close frame and 1015 a failed TLS handshake, so none of them may
// be sent; 1016-2999 are kept for the protocol itself. The node's ABI
// refuses the others to a guest; the WebSocket edge, which must not send
// them, closes with 1000 instead when another responder's reply has one.
// One rule for both, so a guest is refused exactly the codes the edge would
// not send.
func ValidCloseCode(code int64) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}
