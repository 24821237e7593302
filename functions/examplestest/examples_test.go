package examplestest

import (
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/protocol"
)

const (
	helloDir   = "functions/examples/hello"
	authDir    = "functions/examples/auth"
	headersDir = "functions/examples/headers"
	loggerDir  = "functions/examples/logger"
	chatDir    = "functions/examples/chat"
	footerDir  = "functions/examples/footer"
)

func wantPhases(t *testing.T, g *guest, want protocol.PhaseSet) {
	t.Helper()
	if got := protocol.PhaseSet(g.phases); got != want {
		t.Fatalf("nylon_phases = %v (%#x), want %v (%#x)", got.Names(), uint32(got), want.Names(), uint32(want))
	}
}

func TestHello(t *testing.T) {
	g := load(t, helloDir)
	wantPhases(t, g, protocol.PhaseSetOf(protocol.PhaseRequestFilter))

	cases := []struct {
		name string
		call *call
		want string
	}{
		{"query", newCall(protocol.PhaseRequestFilter).request("GET", "/hello?name=ana"), `{"message":"hello, ana"}`},
		{"route param", newCall(protocol.PhaseRequestFilter).request("GET", "/hello/bo").params("name", "bo"), `{"message":"hello, bo"}`},
		{"query wins", newCall(protocol.PhaseRequestFilter).request("GET", "/hello/bo?name=ana").params("name", "bo"), `{"message":"hello, ana"}`},
		{"default", newCall(protocol.PhaseRequestFilter).request("GET", "/hello"), `{"message":"hello, world"}`},
		{"escaped", newCall(protocol.PhaseRequestFilter).request("GET", "/hello").params("name", `"<x>"`), `{"message":"hello, \"\u003cx\u003e\""}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// One instance serves every case, as on a node.
			wantAction(t, g.run(tc.call), protocol.ActionEnd)
			wantOps(t, tc.call,
				op{Method: protocol.OpSetResponseStatus, A: "200"},
				op{Method: protocol.OpSetResponseHeader, A: "Content-Type", B: "application/json"},
				op{Method: protocol.OpSetResponseBody, A: tc.want},
			)
		})
	}
}

func TestAuth(t *testing.T) {
	g := load(t, authDir)
	wantPhases(t, g, protocol.PhaseSetOf(protocol.PhaseRequestFilter))
	cfg := []string{"token", "s3cret", "user", "ana"}

	refused := []struct {
		name, authorization, challenge, detail string
		config                                 []string
	}{
		{"missing", "", "Bearer", "missing bearer token", cfg},
		{"wrong scheme", "Basic czNjcmV0", "Bearer", "missing bearer token", cfg},
		{"wrong token", "Bearer nope", `Bearer error="invalid_token"`, "invalid bearer token", cfg},
		{"prefix of token", "Bearer s3cre", `Bearer error="invalid_token"`, "invalid bearer token", cfg},
		{"no token configured", "Bearer s3cret", `Bearer error="invalid_token"`, "invalid bearer token", nil},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c := newCall(protocol.PhaseRequestFilter).request("GET", "/private").config(tc.config...)
			if tc.authorization != "" {
				c.reqHeaders("Authorization", tc.authorization)
			}
			wantAction(t, g.run(c), protocol.ActionEnd)
			wantOps(t, c,
				op{Method: protocol.OpSetResponseStatus, A: "401"},
				op{Method: protocol.OpSetResponseHeader, A: "WWW-Authenticate", B: tc.challenge},
				op{Method: protocol.OpSetResponseHeader, A: "Content-Type", B: "application/problem+json"},
				op{Method: protocol.OpSetResponseBody, A: `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"` + tc.detail + `"}`},
			)
		})
	}

	t.Run("accepted", func(t *testing.T) {
		c := newCall(protocol.PhaseRequestFilter).request("GET", "/private").config(cfg...).
			reqHeaders("authorization", "bearer s3cret") // scheme and header name in any case
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c,
			op{Method: protocol.OpSetRequestHeader, A: "X-User", B: "ana"},
			op{Method: protocol.OpRemoveRequestHeader, A: "Authorization"},
		)
	})
	t.Run("default user", func(t *testing.T) {
		c := newCall(protocol.PhaseRequestFilter).request("GET", "/private").config("token", "s3cret").
			reqHeaders("Authorization", "Bearer s3cret")
		wantAction(t, g.run(c), protocol.ActionNext)
		if o := findOp(t, c, protocol.OpSetRequestHeader, "X-User"); o.B != "authenticated" {
			t.Fatalf("X-User = %q, want authenticated", o.B)
		}
	})
}

func TestHeaders(t *testing.T) {
	g := load(t, headersDir)
	wantPhases(t, g, protocol.PhaseSetOf(protocol.PhaseResponseFilter))

	upstream := func(status string) *call {
		return newCall(protocol.PhaseResponseFilter).request("GET", "/").
			set(protocol.ReadResponseStatus, status).
			respHeaders("Server", "nginx/1.25", "X-Powered-By", "PHP/8", "Content-Type", "text/html")
	}
	security := []op{
		{Method: protocol.OpSetResponseHeader, A: "Strict-Transport-Security", B: "max-age=63072000; includeSubDomains"},
		{Method: protocol.OpSetResponseHeader, A: "X-Content-Type-Options", B: "nosniff"},
		{Method: protocol.OpSetResponseHeader, A: "X-Frame-Options", B: "DENY"},
		{Method: protocol.OpSetResponseHeader, A: "Referrer-Policy", B: "strict-origin-when-cross-origin"},
		{Method: protocol.OpSetResponseHeader, A: "Content-Security-Policy", B: "default-src 'self'"},
		{Method: protocol.OpRemoveResponseHeader, A: "Server"},
		{Method: protocol.OpRemoveResponseHeader, A: "X-Powered-By"},
	}

	t.Run("defaults", func(t *testing.T) {
		c := upstream("200")
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c, security...)
	})
	t.Run("rewrite matches", func(t *testing.T) {
		c := upstream("500").config("rewrite_status", "404:410, 500:503")
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c, append(security[:len(security):len(security)], op{Method: protocol.OpSetResponseStatus, A: "503"})...)
	})
	t.Run("rewrite no match", func(t *testing.T) {
		c := upstream("200").config("rewrite_status", "500:503")
		wantAction(t, g.run(c), protocol.ActionNext)
		if hasOp(c, protocol.OpSetResponseStatus, "503") {
			t.Fatalf("status rewritten for 200: %v", c.ops)
		}
	})
	t.Run("bad rule", func(t *testing.T) {
		c := upstream("500").config("rewrite_status", "500=503")
		wantAction(t, g.run(c), protocol.ActionError)
		if !strings.Contains(c.errText, "rewrite_status") {
			t.Fatalf("error %q does not name the config key", c.errText)
		}
	})
	t.Run("rule to a status HTTP cannot send", func(t *testing.T) {
		for _, to := range []string{"101", "999"} {
			c := upstream("500").config("rewrite_status", "500:"+to)
			wantAction(t, g.run(c), protocol.ActionError)
			if !strings.Contains(c.errText, `rewrite_status: rule "500:`+to+`": bad status`) {
				t.Fatalf("error %q does not name the rule's bad status", c.errText)
			}
		}
	})
	t.Run("keeps upstream csp and uses config", func(t *testing.T) {
		c := upstream("200").config("hsts", "max-age=60", "referrer_policy", "no-referrer")
		c.respHeaders("Content-Security-Policy", "default-src https:")
		wantAction(t, g.run(c), protocol.ActionNext)
		if hasOp(c, protocol.OpSetResponseHeader, "Content-Security-Policy") {
			t.Fatalf("upstream CSP overwritten: %v", c.ops)
		}
		if o := findOp(t, c, protocol.OpSetResponseHeader, "Strict-Transport-Security"); o.B != "max-age=60" {
			t.Fatalf("HSTS = %q, want config's", o.B)
		}
		if o := findOp(t, c, protocol.OpSetResponseHeader, "Referrer-Policy"); o.B != "no-referrer" {
			t.Fatalf("Referrer-Policy = %q, want config's", o.B)
		}
	})
}

func TestLogger(t *testing.T) {
	g := load(t, loggerDir)
	wantPhases(t, g, protocol.PhaseSetOf(protocol.PhaseLogging))

	done := func(status, duration string) *call {
		return newCall(protocol.PhaseLogging).request("POST", "/orders?x=1").
			set(protocol.ReadResponseStatus, status).
			set(protocol.ReadResponseDuration, duration).
			set(protocol.ReadRequestID, "0190b6c2-7f3a-7c4e-9a7b-2f1e0d9c8b7a")
	}
	c := done("201", "12")
	wantAction(t, g.run(c), protocol.ActionNext)
	wantOps(t, c)
	c = done("502", "1500").config("message", "access")
	c.set(protocol.ReadResponseError, "connection refused")
	wantAction(t, g.run(c), protocol.ActionNext)

	want := []logRecord{
		{Level: 0, Text: "request method=POST path=/orders status=201 duration=12ms request_id=0190b6c2-7f3a-7c4e-9a7b-2f1e0d9c8b7a calls=1"},
		{Level: 4, Text: "access method=POST path=/orders status=502 duration=1.5s request_id=0190b6c2-7f3a-7c4e-9a7b-2f1e0d9c8b7a calls=2"},
	}
	if len(g.logs) != len(want) {
		t.Fatalf("logs = %v, want %v", g.logs, want)
	}
	for i := range want {
		if g.logs[i] != want[i] {
			t.Errorf("log %d = %+v, want %+v", i, g.logs[i], want[i])
		}
	}
}

func TestChat(t *testing.T) {
	g := load(t, chatDir)
	wantPhases(t, g, protocol.PhaseSetOf(protocol.PhaseEvent))

	t.Run("open", func(t *testing.T) {
		c := wsCall(protocol.EventWSOpen, "c1").request("GET", "/chat?room=r1&name=ana")
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c,
			op{Method: protocol.OpWSJoinRoom, A: "r1"},
			op{Method: protocol.OpWSBroadcastText, A: "r1", B: `{"from":"system","text":"ana joined"}`},
		)
	})
	t.Run("open defaults", func(t *testing.T) {
		c := wsCall(protocol.EventWSOpen, "c2").request("GET", "/chat")
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c,
			op{Method: protocol.OpWSJoinRoom, A: "lobby"},
			op{Method: protocol.OpWSBroadcastText, A: "lobby", B: `{"from":"system","text":"c2 joined"}`},
		)
	})
	t.Run("text", func(t *testing.T) {
		c := wsCall(protocol.EventWSText, "c1").request("GET", "/chat?room=r1&name=ana").
			set(protocol.MethodGetPayload, `hi "all"`)
		wantAction(t, g.run(c), protocol.ActionNext)
		// Not ExcludeSender: the sender sees its own message echoed.
		wantOps(t, c, op{Method: protocol.OpWSBroadcastText, A: "r1", B: `{"from":"ana","text":"hi \"all\""}`})
	})
	t.Run("binary ignored", func(t *testing.T) {
		c := wsCall(protocol.EventWSBinary, "c1").request("GET", "/chat?room=r1&name=ana").
			set(protocol.MethodGetPayload, "\x00\x01")
		n := len(g.logs)
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c)
		if len(g.logs) != n+1 || g.logs[n].Level != 4 || !strings.Contains(g.logs[n].Text, "binary message ignored conn=c1 bytes=2") {
			t.Fatalf("logs = %v, want one warning about the binary message", g.logs[n:])
		}
	})
	t.Run("close", func(t *testing.T) {
		c := wsCall(protocol.EventWSClose, "c1").request("GET", "/chat?room=r1&name=ana").
			set(protocol.ReadWSCloseCode, "1000")
		wantAction(t, g.run(c), protocol.ActionNext)
		wantOps(t, c,
			op{Method: protocol.OpWSLeaveRoom, A: "r1"},
			op{Method: protocol.OpWSBroadcastText, A: "r1", B: `{"from":"system","text":"ana left"}`},
		)
	})
}

func TestFooter(t *testing.T) {
	g := load(t, footerDir)
	wantPhases(t, g, protocol.PhaseSetOf(protocol.PhaseResponseBodyFilter))

	chunk := func(info, data string, headers ...string) *call {
		return newCall(protocol.PhaseResponseBodyFilter).
			set(protocol.MethodGetPayload, data).
			set(protocol.ReadBodyChunkInfo, info).
			respHeaders(headers...)
	}
	const footer = "\n<!-- served through nylon -->\n"
	body := func(s string) []op { return []op{{Method: protocol.OpSetResponseBody, A: s}} }
	cases := []struct {
		name string
		call *call
		want []op
	}{
		{"first chunk passes", chunk("0,0", "<html>", "Content-Type", "text/html"), nil},
		{"last chunk", chunk("3,1", "</html>", "Content-Type", "text/html"), body("</html>" + footer)},
		{"media type parameters and case", chunk("0,1", "x", "content-type", "Text/HTML; charset=utf-8"), body("x" + footer)},
		{"empty body", chunk("0,1", "", "Content-Type", "text/html"), body(footer)},
		{"other type", chunk("0,1", "{}", "Content-Type", "application/json"), nil},
		{"no type", chunk("0,1", "x"), nil},
		{"encoded", chunk("0,1", "\x1f\x8b", "Content-Type", "text/html", "Content-Encoding", "gzip"), nil},
		{"identity encoding", chunk("0,1", "x", "Content-Type", "text/html", "Content-Encoding", "identity"), body("x" + footer)},
		{"configured", chunk("0,1", "{}", "Content-Type", "application/json").
			config("types", "text/html, application/json", "footer", "\n"), body("{}\n")},
		{"turned off", chunk("0,1", "x", "Content-Type", "text/html").config("footer", ""), body("x")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantAction(t, g.run(tc.call), protocol.ActionNext)
			wantOps(t, tc.call, tc.want...)
		})
	}
}
