package sdk

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// These tests run the dispatcher on the host, where every read is absent and
// every write is refused (abi's host stand-ins); the wasm behaviour is
// tested end to end in functions/examplestest.

func TestPhases(t *testing.T) {
	var h handlers
	if h.phases() != 0 {
		t.Fatal("empty handlers report phases")
	}
	noop := func(*Context) {}
	register(&h.request, noop, "RequestFilter")
	register(&h.logging, noop, "Logging")
	if got, want := h.phases(), uint32(1<<1|1<<4); got != want {
		t.Fatalf("phases = %#x, want %#x", got, want)
	}
	register(&h.close, func(*WebSocket, int, string) {}, "OnClose")
	if got, want := h.phases(), uint32(1<<1|1<<4|1<<5); got != want {
		t.Fatalf("phases = %#x, want %#x", got, want)
	}
}

func TestRegisterWiringMistakesPanic(t *testing.T) {
	var h handlers
	mustPanic(t, "sdk: RequestFilter: nil handler", func() { register(&h.request, nil, "RequestFilter") })
	mustPanic(t, "sdk: OnMessage: nil handler", func() { register(&h.message, nil, "OnMessage") })
	register(&h.open, func(*WebSocket) {}, "OnOpen")
	mustPanic(t, "sdk: OnOpen: registered twice", func() { register(&h.open, func(*WebSocket) {}, "OnOpen") })
}

func mustPanic(t *testing.T, want string, fn func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != want {
			t.Errorf("panic = %v, want %q", r, want)
		}
	}()
	fn()
}

func TestHandleActions(t *testing.T) {
	g := newInstance()
	var seen []Phase
	g.handlers.request = func(c *Context) {
		seen = append(seen, c.Phase())
		switch c.Request().Method() { // absent on the host: ""
		case "":
			c.End()
		}
	}
	g.handlers.response = func(c *Context) { seen = append(seen, c.Phase()) } // default Next
	g.handlers.logging = func(c *Context) {
		c.Next()
		c.Error(errors.New("x")) // the last verdict wins
	}
	g.handlers.responseBody = func(c *Context) { panic("boom") }

	cases := []struct {
		phase, event uint32
		want         int32
	}{
		{abi.PhaseRequestFilter, 0, abi.ActionEnd},
		{abi.PhaseResponseFilter, 0, abi.ActionNext},
		{abi.PhaseLogging, 0, abi.ActionError},
		{abi.PhaseResponseBodyFilter, 0, abi.ActionError}, // recovered panic
		{abi.PhaseRequestFilter, 0, abi.ActionEnd},        // still usable
		{9, 0, abi.ActionError},                           // unknown phase
		{abi.PhaseEvent, 999, abi.ActionError},            // unknown event
		{abi.PhaseEvent, abi.EventWSOpen, abi.ActionNext}, // no handler: nothing to do
	}
	for _, tc := range cases {
		if got := g.handle(tc.phase, tc.event); got != tc.want {
			t.Errorf("handle(%d, %d) = %d, want %d", tc.phase, tc.event, got, tc.want)
		}
	}
	if want := []Phase{PhaseRequestFilter, PhaseResponseFilter, PhaseRequestFilter}; !reflect.DeepEqual(seen, want) {
		t.Errorf("handlers saw %v, want %v", seen, want)
	}
}

func TestHandleEvents(t *testing.T) {
	g := newInstance()
	var got []string
	g.handlers.message = func(ws *WebSocket, m Message) {
		got = append(got, "message binary="+strconv.FormatBool(m.Binary)+" data="+m.Text())
	}
	g.handlers.close = func(ws *WebSocket, code int, reason string) {
		got = append(got, "close "+strconv.Itoa(code)+" "+reason)
	}
	g.handle(abi.PhaseEvent, abi.EventWSText)
	g.handle(abi.PhaseEvent, abi.EventWSBinary)
	g.handle(abi.PhaseEvent, abi.EventWSClose)
	want := []string{"message binary=false data=", "message binary=true data=", "close 1005 "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events = %q, want %q", got, want)
	}
}

// TestWritesOnHost checks write refusals are typed and the first is kept.
func TestWritesOnHost(t *testing.T) {
	g := newInstance()
	g.handlers.request = func(c *Context) {
		c.Response().SetHeader("a", "b") // refused by the host stand-in
		c.Response().SetStatus(5)        // refused by the SDK
		var we *WriteError
		if !errors.As(c.Err(), &we) || we.Method != abi.OpSetResponseHeader || !errors.Is(c.Err(), ErrNotAllowed) {
			t.Errorf("Err = %v, want the first refusal (set response header, not allowed)", c.Err())
		}
		if got := c.Err().Error(); got != "write[set response header]: not allowed in this phase" {
			t.Errorf("message = %q", got)
		}
		ws := &WebSocket{c: c}
		if err := ws.JoinRoom(""); !errors.Is(err, ErrBadArgument) {
			t.Errorf("JoinRoom(\"\") = %v, want ErrBadArgument", err)
		}
		if err := ws.Broadcast("r", "x", ExcludeSender()); err == nil || !strings.Contains(err.Error(), "ws broadcast text") {
			t.Errorf("Broadcast = %v, want a refusal naming the op", err)
		}
		if err := ws.Close(1000, strings.Repeat("r", 124)); !errors.Is(err, ErrBadArgument) {
			t.Errorf("Close with a 124-byte reason = %v, want ErrBadArgument", err)
		}
	}
	g.handle(abi.PhaseRequestFilter, 0)
	// SetStatus takes the final statuses the node takes, 200-599: the SDK
	// refuses the rest itself (ErrBadArgument), where the host stand-in
	// would refuse every write as not allowed.
	for _, tc := range []struct {
		code int
		kind error
	}{{100, ErrBadArgument}, {101, ErrBadArgument}, {199, ErrBadArgument}, {600, ErrBadArgument}, {999, ErrBadArgument},
		{200, ErrNotAllowed}, {599, ErrNotAllowed}} {
		g.handlers.request = func(c *Context) {
			c.Response().SetStatus(tc.code)
			if !errors.Is(c.Err(), tc.kind) {
				t.Errorf("SetStatus(%d): Err = %v, want %v", tc.code, c.Err(), tc.kind)
			}
		}
		g.handle(abi.PhaseRequestFilter, 0)
	}
	// A new call starts without the last call's error.
	g.handlers.response = func(c *Context) {
		if c.Err() != nil {
			t.Errorf("Err carried over: %v", c.Err())
		}
	}
	g.handle(abi.PhaseResponseFilter, 0)
}

// TestAddHeaderOnHost: AddHeader's refusal is reported under its own
// method, in every HTTP phase (on the host every write is refused; in
// response_body_filter the SDK refuses it before asking the node, as it
// does SetHeader). The wasm behaviour is in functions/examplestest.
func TestAddHeaderOnHost(t *testing.T) {
	g := newInstance()
	var errs []error
	add := func(c *Context) {
		c.Response().AddHeader("Set-Cookie", "a=1")
		c.Response().SetHeader("X-After", "1") // a later refusal does not replace the first
		errs = append(errs, c.Err())
	}
	g.handlers.request, g.handlers.response, g.handlers.responseBody, g.handlers.logging = add, add, add, add
	phases := []uint32{abi.PhaseRequestFilter, abi.PhaseResponseFilter, abi.PhaseResponseBodyFilter, abi.PhaseLogging}
	for _, p := range phases {
		g.handle(p, 0)
	}
	if len(errs) != len(phases) {
		t.Fatalf("handlers ran %d times, want %d", len(errs), len(phases))
	}
	for i, err := range errs {
		var we *WriteError
		if !errors.As(err, &we) || we.Method != abi.OpAddResponseHeader || !errors.Is(err, ErrNotAllowed) {
			t.Errorf("phase %d: Err = %v, want the add refused as not allowed", phases[i], err)
			continue
		}
		if got := err.Error(); got != "write[add response header]: not allowed in this phase" {
			t.Errorf("phase %d: message = %q", phases[i], got)
		}
	}
}

// TestCloseCodes: Close takes the codes an endpoint may send (RFC 6455
// 7.4) and refuses the rest itself, which the edge would otherwise replace
// with 1000 without a word.
func TestCloseCodes(t *testing.T) {
	g := newInstance()
	refused := []int{0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000}
	passed := []int{1000, 1001, 1003, 1007, 1011, 1014, 3000, 4000, 4999} // to the host stand-in, which refuses every write
	g.handlers.open = func(ws *WebSocket) {
		for _, code := range refused {
			if err := ws.Close(code, ""); !errors.Is(err, ErrBadArgument) {
				t.Errorf("Close(%d) = %v, want ErrBadArgument", code, err)
			}
		}
		for _, code := range passed {
			if err := ws.Close(code, ""); !errors.Is(err, ErrNotAllowed) {
				t.Errorf("Close(%d) = %v, want the host's refusal, ErrNotAllowed", code, err)
			}
		}
	}
	g.handle(abi.PhaseEvent, abi.EventWSOpen)
}

// TestWebSocketError: a WebSocket handler fails its event with ws.Error,
// as an HTTP handler does with ctx.Error.
func TestWebSocketError(t *testing.T) {
	g := newInstance()
	g.handlers.message = func(ws *WebSocket, m Message) {
		if m.Binary {
			ws.Error(errors.New("no binary"))
		}
	}
	if got := g.handle(abi.PhaseEvent, abi.EventWSBinary); got != abi.ActionError {
		t.Errorf("binary: action = %d, want Error", got)
	}
	if got := g.handle(abi.PhaseEvent, abi.EventWSText); got != abi.ActionNext {
		t.Errorf("text: action = %d, want Next", got)
	}
}

// TestPanicStack: the stack logged for a recovered panic starts at the
// frame that panicked, not in debug.Stack or the recovering function.
func TestPanicStack(t *testing.T) {
	var stack string
	func() {
		defer func() {
			recover()
			stack = panicStack()
		}()
		var m map[string]int
		m["x"]++ // line of the panic
	}()
	first, _, _ := strings.Cut(stack, "\n")
	if !strings.Contains(first, "TestPanicStack.func") || strings.Contains(stack, "runtime/debug.Stack") || strings.Contains(stack, "\npanic(") {
		t.Fatalf("stack does not start at the panicking frame:\n%s", stack)
	}
	if !strings.Contains(stack, "instance_test.go:") {
		t.Fatalf("stack lacks the panicking file:\n%s", stack)
	}
}

func TestWriteErr(t *testing.T) {
	cases := []struct {
		rc   int32
		kind error
		msg  string
	}{
		{abi.ResultNotAllowed, ErrNotAllowed, "write[ws send text]: not allowed in this phase"},
		{abi.ResultTooLarge, ErrTooLarge, "write[ws send text]: output too large"},
		{abi.ResultBadArgument, ErrBadArgument, "write[ws send text]: bad argument"},
		{-9, nil, "write[ws send text]: host result -9"},
	}
	for _, tc := range cases {
		err := writeErr(abi.OpWSSendText|abi.FlagBroadcastExclude, tc.rc)
		if err.Error() != tc.msg || (tc.kind != nil && !errors.Is(err, tc.kind)) {
			t.Errorf("writeErr(%d) = %v, want %q wrapping %v", tc.rc, err, tc.msg, tc.kind)
		}
	}
	if writeErr(abi.OpWSSendText, abi.ResultOK) != nil {
		t.Error("ResultOK is an error")
	}
	if got := methodName(12345); got != "12345" {
		t.Errorf("methodName(12345) = %q", got)
	}
}

func TestPhaseString(t *testing.T) {
	for p, want := range map[Phase]string{
		PhaseEvents: "events", PhaseRequestFilter: "request_filter", PhaseResponseFilter: "response_filter",
		PhaseResponseBodyFilter: "response_body_filter", PhaseLogging: "logging", 7: "phase(7)",
	} {
		if p.String() != want {
			t.Errorf("Phase(%d) = %q, want %q", p, p.String(), want)
		}
	}
}
