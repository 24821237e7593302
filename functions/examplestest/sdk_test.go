package examplestest

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// sdkGuestDir is a guest that exercises the whole SDK (testdata/sdkguest).
const sdkGuestDir = "functions/examplestest/testdata/sdkguest"

func TestSDKPhases(t *testing.T) {
	g := load(t, sdkGuestDir)
	wantPhases(t, g, protocol.PhaseSetOf(protocol.PhaseRequestFilter, protocol.PhaseResponseFilter,
		protocol.PhaseResponseBodyFilter, protocol.PhaseLogging, protocol.PhaseEvent))
}

func TestSDKRequestReads(t *testing.T) {
	g := load(t, sdkGuestDir)
	// Values larger than the SDK's 4 KiB read buffer take the grow path:
	// the header grows the shared buffer past twice its size, the body is
	// read into a slice of its own.
	bigBody := strings.Repeat("b", 100<<10)
	bigHeader := strings.Repeat("h", 100<<10)
	c := newCall(protocol.PhaseRequestFilter).request("PUT", "/echo?a=1&a=2&b=x%20y").
		set(protocol.ReadRequestHost, "example.com").
		set(protocol.ReadRequestScheme, "https").
		set(protocol.ReadRequestClientIP, "192.0.2.7").
		set(protocol.ReadRequestFullBody, bigBody).
		set(protocol.ReadRequestBytes, "102400").
		set(protocol.ReadRequestTimestamp, "1700000000123").
		set(protocol.ReadRequestID, "0190b6c2-7f3a-7c4e-9a7b-2f1e0d9c8b7a").
		reqHeaders("x-a", "first", "X-A", "second", "content-type", "text/plain", "X-Big", bigHeader).
		params("id", "42", "slug", "x").
		config("k", "v", "other", "")
	wantAction(t, g.run(c), protocol.ActionEnd)
	var got map[string]any
	var bodyOp op
	for _, o := range c.ops {
		if o.Method == protocol.OpSetResponseBody {
			bodyOp = o
		}
	}
	if err := json.Unmarshal([]byte(bodyOp.A), &got); err != nil {
		t.Fatalf("echo body %q: %v", bodyOp.A, err)
	}
	want := map[string]any{
		"method":      "PUT",
		"path":        "/echo",
		"url":         "/echo?a=1&a=2&b=x%20y",
		"raw_query":   "a=1&a=2&b=x%20y",
		"query":       map[string]any{"a": []any{"1", "2"}, "b": []any{"x y"}},
		"query_param": "1",
		"host":        "example.com",
		"scheme":      "https",
		"client_ip":   "192.0.2.7",
		"header":      "first",
		"headers": map[string]any{
			"X-A":          []any{"first", "second"},
			"Content-Type": []any{"text/plain"},
			"X-Big":        []any{bigHeader},
		},
		"body":        bigBody,
		"body_length": float64(102400),
		"params":      map[string]any{"id": "42", "slug": "x"},
		"param":       "42",
		"timestamp":   float64(1700000000123),
		"request_id":  "0190b6c2-7f3a-7c4e-9a7b-2f1e0d9c8b7a",
		"config":      "v",
		"config_map":  map[string]any{"k": "v", "other": ""},
		"phase":       "request_filter",
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			g := got[k]
			if s, ok := g.(string); ok && len(s) > 80 {
				g = s[:80] + "..."
			}
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("echo has %d fields, want %d", len(got), len(want))
	}

	// Present but empty is not absent: ?e, "E:", route param e="" and
	// config e="" are found, by keyed reads and cached maps alike.
	c = newCall(protocol.PhaseRequestFilter).request("GET", "/lookup?e&x=1").
		reqHeaders("E", "").params("e", "").config("e", "")
	if a := g.run(c); a != protocol.ActionEnd {
		t.Fatalf("lookup: action = %v (%s), want End", a, c.errText)
	}
	wantOps(t, c,
		op{Method: protocol.OpSetResponseHeader, A: "Content-Type", B: "text/plain; charset=utf-8"},
		op{Method: protocol.OpSetResponseBody, A: "header=true: param=true: query=true: config=true: response_header=false:"},
	)

	// The instance is reused: a call without values must not see the last
	// call's cached ones.
	c = newCall(protocol.PhaseRequestFilter).set(protocol.ReadRequestPath, "/absent")
	if a := g.run(c); a != protocol.ActionEnd {
		t.Fatalf("action = %v (%s), want End", a, c.errText)
	}
}

func TestSDKResponseWrites(t *testing.T) {
	g := load(t, sdkGuestDir)
	cases := []struct {
		path   string
		action protocol.Action
		ops    []op
	}{
		{"/text", protocol.ActionEnd, []op{
			{Method: protocol.OpSetResponseStatus, A: "201"},
			{Method: protocol.OpSetResponseHeader, A: "Content-Type", B: "text/plain; charset=utf-8"},
			{Method: protocol.OpSetResponseBody, A: "plain"},
		}},
		{"/write", protocol.ActionEnd, []op{
			{Method: protocol.OpSetResponseBody, A: "a"},
			{Method: protocol.OpSetStreamData, A: "1-b"},
		}},
		{"/html", protocol.ActionEnd, []op{
			{Method: protocol.OpSetResponseHeader, A: "Content-Type", B: "text/html; charset=utf-8"},
			{Method: protocol.OpSetResponseBody, A: "<p>hi</p>"},
		}},
		{"/redirect", protocol.ActionEnd, []op{
			{Method: protocol.OpSetResponseHeader, A: "Location", B: "/new"},
			{Method: protocol.OpSetResponseStatus, A: "302"},
		}},
		{"/status", protocol.ActionEnd, []op{ // 1xx and 600-999 refused, by the SDK and by the node
			{Method: protocol.OpSetResponseStatus, A: "599"},
		}},
		{"/cookies", protocol.ActionEnd, []op{ // a header split and a bad name refused
			{Method: protocol.OpSetResponseHeader, A: "Set-Cookie", B: "a=1"},
			{Method: protocol.OpAddResponseHeader, A: "Set-Cookie", B: "b=2; Path=/"},
		}},
		{"/upstream-headers", protocol.ActionNext, []op{
			{Method: protocol.OpSetRequestHeader, A: "X-Up", B: "1"},
			{Method: protocol.OpRemoveRequestHeader, A: "Cookie"},
			{Method: protocol.OpSetResponseHeader, A: "X-Resp", B: "1"},
			{Method: protocol.OpRemoveResponseHeader, A: "X-Gone"},
			{Method: protocol.OpSetResponseBody, A: "bytes"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			c := newCall(protocol.PhaseRequestFilter).request("GET", tc.path)
			if a := g.run(c); a != tc.action {
				t.Fatalf("action = %v (%s), want %v", a, c.errText, tc.action)
			}
			wantOps(t, c, tc.ops...)
		})
	}
}

// TestSDKErrorsAndPanics checks ctx.Error and that a panicking handler
// answers Error with the panic text and leaves the instance usable.
func TestSDKErrorsAndPanics(t *testing.T) {
	g := load(t, sdkGuestDir)
	c := newCall(protocol.PhaseRequestFilter).request("GET", "/error")
	wantAction(t, g.run(c), protocol.ActionError)
	if c.errText != "handler says no" {
		t.Fatalf("error text = %q", c.errText)
	}
	for range 3 {
		c = newCall(protocol.PhaseRequestFilter).request("GET", "/panic")
		n := len(g.logs)
		wantAction(t, g.run(c), protocol.ActionError)
		if !strings.HasPrefix(c.errText, "panic: ") || !strings.Contains(c.errText, "nil map") {
			t.Fatalf("error text = %q, want the panic", c.errText)
		}
		// The text says what; the log record says where: one error record
		// whose stack starts at the handler's line.
		if len(g.logs) != n+1 {
			t.Fatalf("logs = %q, want one record of the panic", g.logs[n:])
		}
		rec := g.logs[n]
		wantPrefix := `sdk: handler panicked panic="panic: assignment to entry in nil map" stack="main.init.`
		if rec.Level != 8 || !strings.HasPrefix(rec.Text, wantPrefix) || !strings.Contains(rec.Text, "testdata/sdkguest/main.go:") {
			t.Fatalf("panic record = %d %q, want level 8, prefix %q and the handler's file", rec.Level, rec.Text, wantPrefix)
		}
		c = newCall(protocol.PhaseRequestFilter).request("GET", "/text")
		wantAction(t, g.run(c), protocol.ActionEnd)
	}
	// A recovered panic is an ordinary Error answer: the one instance
	// served every call and was never replaced.
	if st := g.mod.Stats(); st.Created != 1 || st.Discarded != 0 || st.Traps != 0 {
		t.Fatalf("pool stats = %+v, want one instance, none discarded, no traps", st)
	}
}

// TestSDKUnknownEventAndPhase: wasmhost refuses an event the ABI does not
// define, and a phase the module did not declare in nylon_phases, before
// the guest runs (the SDK's own answers to those, an Error naming the event
// or "sdk: no handler for <phase>", are covered by functions/sdk's tests).
func TestSDKUnknownEventAndPhase(t *testing.T) {
	sdk := load(t, sdkGuestDir)
	if _, err := sdk.call(wsCall(999, "c1")); !errors.Is(err, wasmhost.ErrUnsupportedPhase) || !strings.Contains(err.Error(), "999") {
		t.Fatalf("event 999: err = %v, want ErrUnsupportedPhase naming the event", err)
	}
	hello := load(t, helloDir)
	if _, err := hello.call(newCall(protocol.PhaseLogging)); !errors.Is(err, wasmhost.ErrUnsupportedPhase) {
		t.Fatalf("logging on hello: err = %v, want ErrUnsupportedPhase", err)
	}
	// Neither refusal cost an instance.
	for _, g := range []*guest{sdk, hello} {
		if st := g.mod.Stats(); st.Calls != 0 || st.Discarded != 0 {
			t.Fatalf("%s: pool stats = %+v, want no call made", g.name, st)
		}
	}
}

func TestSDKResponsePhases(t *testing.T) {
	g := load(t, sdkGuestDir)
	t.Run("response_filter", func(t *testing.T) {
		c := newCall(protocol.PhaseResponseFilter).request("GET", "/").
			set(protocol.ReadResponseStatus, "404").
			set(protocol.ReadResponseFullBody, "not here").
			set(protocol.ReadResponseBytes, "8").
			set(protocol.ReadResponseDuration, "250").
			set(protocol.ReadResponseError, "").
			respHeaders("X-Up", "u1", "x-up", "u2", "e", "")
		wantAction(t, g.run(c), protocol.ActionNext)
		want := `{"status":404,"header":"u1","headers":{"E":[""],"X-Up":["u1","u2"]},"body":"not here","body_length":8,"duration_ms":250,"upstream_error":"","lookup_e":"true:"}`
		wantOps(t, c,
			op{Method: protocol.OpSetResponseHeader, A: "Content-Type", B: "application/json"},
			op{Method: protocol.OpSetResponseBody, A: want},
		)
	})
	t.Run("response_filter adds a cookie", func(t *testing.T) {
		c := newCall(protocol.PhaseResponseFilter).request("GET", "/").
			set(protocol.ReadResponseStatus, "200").
			respHeaders("Set-Cookie", "up=1").
			config("add_cookie", "rf=1; Path=/")
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c, op{Method: protocol.OpAddResponseHeader, A: "Set-Cookie", B: "rf=1; Path=/"})
	})
	t.Run("response_body_filter", func(t *testing.T) {
		// The guest also tries a header (set and add), a status and a
		// redirect, which the SDK refuses in this phase (ErrNotAllowed,
		// else the guest answers Error): only the body op goes out.
		for _, chunk := range []struct{ info, data, want string }{
			{"0,0", "abc", "0,false:ABC"},
			{"1,1", "def", "1,true:DEF"},
		} {
			c := newCall(protocol.PhaseResponseBodyFilter).
				set(protocol.MethodGetPayload, chunk.data).
				set(protocol.ReadBodyChunkInfo, chunk.info)
			wantAction(t, g.run(c), protocol.ActionNext)
			wantOps(t, c, op{Method: protocol.OpSetResponseBody, A: chunk.want})
		}
	})
	t.Run("logging refuses writes", func(t *testing.T) {
		c := newCall(protocol.PhaseLogging)
		n := len(g.logs)
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c)
		want := logRecord{Level: 0, Text: `refused err="write[set response header]: not allowed in this phase" not_allowed=true as=true`}
		if len(g.logs) != n+1 || g.logs[n] != want {
			t.Fatalf("logs = %v, want %v", g.logs[n:], want)
		}
	})
}

func TestSDKLog(t *testing.T) {
	g := load(t, sdkGuestDir)
	c := newCall(protocol.PhaseRequestFilter).request("GET", "/log")
	wantAction(t, g.run(c), protocol.ActionNext)
	want := []logRecord{
		{Level: 0, Text: `hello world a=1 g.k="v w" g.sub.x=true g.e="bad=thing"`},
		{Level: -4, Text: `debug dur=1.5e+09 empty=""`},
		{Level: 8, Text: `error f=0.5 u=7`},
	}
	if !reflect.DeepEqual(g.logs, want) {
		t.Fatalf("logs =\n%q\nwant\n%q", g.logs, want)
	}
}

func TestSDKWebSocket(t *testing.T) {
	g := load(t, sdkGuestDir)
	t.Run("open", func(t *testing.T) {
		c := wsCall(protocol.EventWSOpen, "conn-1").request("GET", "/ws").config("greeting", "hey")
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c,
			op{Method: protocol.OpWSSendText, A: "welcome conn-1 to /ws hey"},
			op{Method: protocol.OpWSSendBinary, A: "\x00\x01\x02"},
			op{Method: protocol.OpWSJoinRoom, A: "r"},
			op{Method: protocol.OpWSBroadcastText, Flags: protocol.BroadcastExcludeSender, A: "r", B: "hi"},
			op{Method: protocol.OpWSBroadcastBinary, A: "r", B: "\x09"},
			op{Method: protocol.OpWSLeaveRoom, A: "r"},
			op{Method: protocol.OpWSClose, A: "4000", B: "bye"},
		)
	})
	t.Run("messages", func(t *testing.T) {
		big := strings.Repeat("m", 10<<10)
		for _, m := range []struct {
			event   uint32
			payload string
			send    uint32
		}{
			{protocol.EventWSText, "hello", protocol.OpWSSendText},
			{protocol.EventWSBinary, "\xff\x00", protocol.OpWSSendBinary},
			{protocol.EventWSText, big, protocol.OpWSSendText},
			{protocol.EventWSText, "", protocol.OpWSSendText},
		} {
			c := wsCall(m.event, "conn-2").set(protocol.MethodGetPayload, m.payload)
			wantAction(t, g.run(c), protocol.ActionNext)
			wantOps(t, c,
				op{Method: m.send, A: m.payload},
				op{Method: protocol.OpWSSendText, A: "conn-2 " + itoa(len(m.payload))},
			)
		}
	})
	t.Run("error", func(t *testing.T) {
		c := wsCall(protocol.EventWSText, "conn-2").set(protocol.MethodGetPayload, "fail")
		wantAction(t, g.run(c), protocol.ActionError)
		if c.errText != "refused: fail" {
			t.Fatalf("error text = %q, want the handler's", c.errText)
		}
	})
	t.Run("close", func(t *testing.T) {
		n := len(g.logs)
		c := wsCall(protocol.EventWSClose, "conn-3").set(protocol.ReadWSCloseCode, "4001").set(protocol.ReadWSCloseReason, "gone away")
		wantAction(t, g.run(c), protocol.ActionNext)
		c = wsCall(protocol.EventWSClose, "conn-4") // no close frame
		wantAction(t, g.run(c), protocol.ActionNext)
		c = wsCall(protocol.EventWSClose, "conn-5").set(protocol.ReadWSCloseCode, "0")
		wantAction(t, g.run(c), protocol.ActionNext)
		want := []logRecord{
			{Level: 4, Text: `closed conn=conn-3 code=4001 reason="gone away"`},
			{Level: 4, Text: `closed conn=conn-4 code=1005 reason=""`},
			{Level: 4, Text: `closed conn=conn-5 code=1005 reason=""`},
		}
		if !reflect.DeepEqual(g.logs[n:], want) {
			t.Fatalf("logs = %q, want %q", g.logs[n:], want)
		}
	})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
