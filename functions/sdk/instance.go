package sdk

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// initialBuf is the read buffer's starting size: enough for every scalar
// value and most header lists, so a typical call never grows it.
const initialBuf = 4 << 10

// maxKeptBuf bounds the shared read buffer kept between calls; a larger
// value is read into a buffer of its own, so one huge header list does not
// pin memory for the instance's lifetime.
const maxKeptBuf = 1 << 20

// instance is the state of one module instance (see guest).
type instance struct {
	handlers handlers

	buf     []byte // shared read buffer; a read's result is valid until the next read
	payload []byte // WebSocket payloads, apart from buf so Message.Data survives other reads
	logBuf  []byte // formatting buffer of the slog handler
	logger  *slog.Logger

	// lastVals holds the previous call's cached scalar values (see
	// Context.cachedString).
	lastVals [numCached]string

	ctx Context
	ws  WebSocket
}

func newInstance() *instance {
	g := &instance{buf: make([]byte, initialBuf)}
	g.logger = slog.New(&logHandler{g: g})
	return g
}

// handle runs the handler for phase and event and returns the action. It is
// what the nylon_handle export calls.
func (g *instance) handle(phase, event uint32) (action int32) {
	c := &g.ctx
	c.reset(g, Phase(phase))
	defer func() {
		// A panicking handler must not poison the instance: recover, report
		// the panic as the call's error, and leave the instance reusable.
		if r := recover(); r != nil {
			text := fmt.Sprint("panic: ", r)
			abi.Write(abi.MethodError, text, "")
			// The error text says what, not where: log the stack (one
			// record, tagged with the call's request id by the node) so the
			// author can find the line. Only a panicking call pays for it.
			g.logger.LogAttrs(context.Background(), slog.LevelError, "sdk: handler panicked",
				slog.String("panic", text), slog.String("stack", panicStack()))
			action = abi.ActionError
		}
	}()
	h := &g.handlers
	var fn func(*Context)
	switch phase {
	case abi.PhaseEvent:
		return g.handleEvent(event)
	case abi.PhaseRequestFilter:
		fn = h.request
	case abi.PhaseResponseFilter:
		fn = h.response
	case abi.PhaseResponseBodyFilter:
		fn = h.responseBody
	case abi.PhaseLogging:
		fn = h.logging
	}
	if fn == nil {
		// The node only calls phases nylon_phases reported; answer anything
		// else with an error instead of silently continuing.
		abi.Write(abi.MethodError, "sdk: no handler for "+Phase(phase).String(), "")
		return abi.ActionError
	}
	fn(c)
	return c.action
}

// panicStack returns the stack of the goroutine that is panicking, from the
// frame that panicked on, for a deferred function that recovered: the
// frames of debug.Stack, of that deferred function and of panic itself say
// nothing to the author, and the node cuts a log record at 4 KiB.
func panicStack() string {
	s := debug.Stack()
	if i := bytes.Index(s, []byte("\npanic(")); i >= 0 {
		s = s[i+1:]
		for range 2 { // the panic(...) line and its file:line
			if j := bytes.IndexByte(s, '\n'); j >= 0 {
				s = s[j+1:]
			}
		}
	}
	return string(bytes.TrimSpace(s))
}

func (g *instance) handleEvent(event uint32) int32 {
	ws := &g.ws
	ws.c = &g.ctx
	h := &g.handlers
	switch event {
	case abi.EventWSOpen:
		if h.open != nil {
			h.open(ws)
		}
	case abi.EventWSText, abi.EventWSBinary:
		if h.message != nil {
			h.message(ws, Message{Binary: event == abi.EventWSBinary, Data: g.readPayload()})
		}
	case abi.EventWSClose:
		if h.close != nil {
			code, reason := 1005, "" // 1005: no status received (RFC 6455 7.4.1)
			if b, ok := g.read(abi.ReadWSCloseCode, ""); ok {
				// 0 is no close code; report it as 1005 like a missing one.
				if n, err := strconv.Atoi(string(b)); err == nil && n > 0 {
					code = n
				}
			}
			if b, ok := g.read(abi.ReadWSCloseReason, ""); ok {
				reason = string(b)
			}
			h.close(ws, code, reason)
		}
	default:
		abi.Write(abi.MethodError, "sdk: unknown websocket event "+strconv.Itoa(int(event)), "")
		return abi.ActionError
	}
	return g.ctx.action
}

// read returns the value of method (keyed by key) in the shared buffer,
// valid until the next read; ok is false when the value is absent.
func (g *instance) read(method uint32, key string) (b []byte, ok bool) {
	n := abi.Read(method, key, g.buf)
	if n < 0 {
		return nil, false
	}
	if int(n) <= len(g.buf) {
		return g.buf[:n], true
	}
	if int(n) > maxKeptBuf {
		return readInto(method, key, make([]byte, n))
	}
	// Grow at least twofold so a run of growing values reallocates rarely.
	g.buf = make([]byte, min(max(int(n), 2*len(g.buf)), maxKeptBuf))
	return readInto(method, key, g.buf[:n])
}

// readCopy is read into memory the caller owns: bodies and other values
// that outlive the next read.
func (g *instance) readCopy(method uint32, key string) ([]byte, bool) {
	n := abi.Read(method, key, g.buf)
	if n < 0 {
		return nil, false
	}
	if int(n) <= len(g.buf) {
		return append([]byte{}, g.buf[:n]...), true
	}
	return readInto(method, key, make([]byte, n))
}

// readPayload reads the WebSocket payload into its own reused buffer.
func (g *instance) readPayload() []byte {
	n := abi.Read(abi.GetPayload, "", g.payload)
	if n < 0 {
		return nil
	}
	if int(n) <= len(g.payload) {
		return g.payload[:n]
	}
	if int(n) > maxKeptBuf {
		b, _ := readInto(abi.GetPayload, "", make([]byte, n))
		return b
	}
	g.payload = make([]byte, min(max(int(n), 2*len(g.payload)), maxKeptBuf))
	b, _ := readInto(abi.GetPayload, "", g.payload[:n])
	return b
}

// readInto reads a value whose length the host already reported into dst,
// which has exactly that length.
func readInto(method uint32, key string, dst []byte) ([]byte, bool) {
	n := abi.Read(method, key, dst)
	if n < 0 || int(n) > len(dst) {
		// The value changed between two reads of one call: the host is
		// broken; report it absent rather than loop.
		return nil, false
	}
	return dst[:n], true
}

// readString is read converted to a string.
func (g *instance) readString(method uint32, key string) string {
	b, _ := g.read(method, key)
	return string(b)
}

// lookupString is read converted to a string, with whether it is present.
func (g *instance) lookupString(method uint32, key string) (string, bool) {
	b, ok := g.read(method, key)
	return string(b), ok
}

// readInt is read parsed as a decimal integer; 0 when absent or malformed.
func (g *instance) readInt(method uint32, key string) int64 {
	b, ok := g.read(method, key)
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}

// eachPair calls fn for every name/value pair of a list-valued read
// ("name\x00value\x00..."). A trailing name without a value gets "".
func eachPair(b []byte, fn func(name, value string)) {
	for len(b) > 0 {
		name, rest := cut(b)
		value, rest2 := cut(rest)
		fn(string(name), string(value))
		b = rest2
	}
}

func cut(b []byte) (field, rest []byte) {
	for i, c := range b {
		if c == abi.ListSep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}
