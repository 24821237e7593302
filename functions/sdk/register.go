package sdk

import "github.com/nylon-functions/nylon/functions/internal/abi"

// guest is the module instance's state: its handlers, read buffers and the
// reused call context. It is package-level because that is what a reactor
// module is: handlers register from init() functions, and the node enters
// through exported functions that take only numbers. An instance runs one
// call at a time, so nothing here needs a lock.
var guest = newInstance()

// RequestFilter registers fn for the request_filter phase, which runs before
// the upstream is called: authenticate, rewrite the upstream request's
// headers, or answer the request itself with ctx.End().
//
// Call it, and the other registration functions, from func init(). Each
// panics if fn is nil or its phase (or event) already has a handler: a
// module has at most one handler per phase, and a panic in init makes the
// platform refuse the upload with the panic's text.
func RequestFilter(fn func(ctx *Context)) { register(&guest.handlers.request, fn, "RequestFilter") }

// ResponseFilter registers fn for the response_filter phase, which runs when
// the upstream's status and headers are known: change them before they reach
// the client. It panics like RequestFilter.
func ResponseFilter(fn func(ctx *Context)) { register(&guest.handlers.response, fn, "ResponseFilter") }

// ResponseBodyFilter registers fn for the response_body_filter phase, which
// runs for each chunk of the upstream's body (Response().ReadBody,
// ChunkIndex, LastChunk); Response().Body replaces the chunk. The status and
// headers are already sent then (see Response). It panics like
// RequestFilter.
func ResponseBodyFilter(fn func(ctx *Context)) {
	register(&guest.handlers.responseBody, fn, "ResponseBodyFilter")
}

// Logging registers fn for the logging phase, which runs after the response
// was sent, off the request path: Response reads the final status,
// headers and duration, and every write is refused (ErrNotAllowed). A busy
// gateway may drop logging calls rather than queue them without bound. It
// panics like RequestFilter.
func Logging(fn func(ctx *Context)) { register(&guest.handlers.logging, fn, "Logging") }

// OnOpen registers fn for a new WebSocket connection on a route bound to
// this function. A handler that fails (WebSocket.Error, or a panic) makes
// the edge close the connection with 1011. It panics like RequestFilter.
func OnOpen(fn func(ws *WebSocket)) { register(&guest.handlers.open, fn, "OnOpen") }

// OnMessage registers fn for each text or binary message a client sends,
// one call at a time per connection, in order. It panics like
// RequestFilter.
func OnMessage(fn func(ws *WebSocket, msg Message)) {
	register(&guest.handlers.message, fn, "OnMessage")
}

// OnClose registers fn for a connection that closed, after it left its
// rooms: with the close code and reason of the client's close frame (1005
// and "" when it sent none), or the edge's own code when the edge closed
// it (1001 going away, 1006 connection lost, 1008 slow consumer, 1009
// message too big, 1011, ...; docs/WEBSOCKET.md "Close codes"). It runs
// only for a connection whose open event succeeded; sends to the closed
// connection are dropped, broadcasts to its rooms still go out. It panics
// like RequestFilter.
func OnClose(fn func(ws *WebSocket, code int, reason string)) {
	register(&guest.handlers.close, fn, "OnClose")
}

// handlers is what a module registered.
type handlers struct {
	request, response, responseBody, logging func(*Context)

	open    func(*WebSocket)
	message func(*WebSocket, Message)
	close   func(*WebSocket, int, string)
}

// register stores fn in *slot. A nil fn or a second registration is a
// wiring mistake that must fail the module at instantiation, hence the panic.
func register[F any](slot *F, fn F, name string) {
	if isNil(fn) {
		panic("sdk: " + name + ": nil handler")
	}
	if !isNil(*slot) {
		panic("sdk: " + name + ": registered twice")
	}
	*slot = fn
}

// isNil reports whether the func value f is nil; F is always a func type.
func isNil[F any](f F) bool {
	var v any = f
	switch fn := v.(type) {
	case func(*Context):
		return fn == nil
	case func(*WebSocket):
		return fn == nil
	case func(*WebSocket, Message):
		return fn == nil
	case func(*WebSocket, int, string):
		return fn == nil
	}
	return v == nil
}

// phases is the nylon_phases bitmask: bit p for HTTP phase p, bit 5 for
// WebSocket events.
func (h *handlers) phases() uint32 {
	var s uint32
	if h.request != nil {
		s |= 1 << abi.PhaseRequestFilter
	}
	if h.response != nil {
		s |= 1 << abi.PhaseResponseFilter
	}
	if h.responseBody != nil {
		s |= 1 << abi.PhaseResponseBodyFilter
	}
	if h.logging != nil {
		s |= 1 << abi.PhaseLogging
	}
	if h.open != nil || h.message != nil || h.close != nil {
		s |= abi.PhaseSetWebSocket
	}
	return s
}
