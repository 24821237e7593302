// Command sdkguest exercises every part of the SDK for the tests in
// functions/examplestest: it reports what it read as JSON and makes writes
// that the tests check, including refused ones.
//
// The gateway's end-to-end tests also deploy it as a response_filter
// plugin: with the config key "add_cookie" set, its response_filter only
// adds that value as a Set-Cookie header (Response.AddHeader), leaving the
// rest of the response as it is.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/nylon-functions/nylon/functions/internal/abi"
	"github.com/nylon-functions/nylon/functions/sdk"
)

// echo is what /echo reports.
type echo struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	URL        string              `json:"url"`
	RawQuery   string              `json:"raw_query"`
	Query      map[string][]string `json:"query"`
	QueryParam string              `json:"query_param"`
	Host       string              `json:"host"`
	Scheme     string              `json:"scheme"`
	ClientIP   string              `json:"client_ip"`
	Header     string              `json:"header"`
	Headers    map[string][]string `json:"headers"`
	Body       string              `json:"body"`
	BodyLength int64               `json:"body_length"`
	Params     map[string]string   `json:"params"`
	Param      string              `json:"param"`
	Timestamp  int64               `json:"timestamp"`
	RequestID  string              `json:"request_id"`
	Config     string              `json:"config"`
	ConfigMap  map[string]string   `json:"config_map"`
	Phase      string              `json:"phase"`
}

// upstream is what response_filter reports.
type upstream struct {
	Status        int                 `json:"status"`
	Header        string              `json:"header"`
	Headers       map[string][]string `json:"headers"`
	Body          string              `json:"body"`
	BodyLength    int64               `json:"body_length"`
	DurationMS    int64               `json:"duration_ms"`
	UpstreamError string              `json:"upstream_error"`
	LookupE       string              `json:"lookup_e"` // LookupHeader("e") as found:value
}

func init() {
	sdk.RequestFilter(func(ctx *sdk.Context) {
		req, res := ctx.Request(), ctx.Response()
		switch req.Path() {
		case "/echo":
			e := echo{
				Method: req.Method(), Path: req.Path(), URL: req.URL(), RawQuery: req.RawQuery(),
				QueryParam: req.QueryParam("a"), Host: req.Host(), Scheme: req.Scheme(),
				ClientIP: req.ClientIP(), Header: req.Header("x-a"), Body: string(req.Body()),
				BodyLength: req.BodyLength(), Param: req.Param("id"),
				Timestamp: req.Timestamp().UnixMilli(), RequestID: ctx.IdempotencyKey(),
				Config: ctx.Config("k"), Phase: ctx.Phase().String(),
			}
			e.Query = req.Query()
			e.Headers = req.Headers()
			e.Params = req.Params()
			e.ConfigMap = ctx.ConfigMap()
			if err := res.BodyJSON(e); err != nil {
				ctx.Error(err)
				return
			}
			ctx.End()
		case "/client-ip":
			// The client address as the edge resolved it (the gateway's
			// and serve's trusted-proxy tests); the response phases leave
			// this path alone.
			res.BodyText(req.ClientIP())
			ctx.End()
		case "/absent":
			// Every read of a value the node does not have is the zero value.
			got := []string{req.Method(), req.Header("nope"), req.Param("nope"), ctx.Config("nope"),
				req.QueryParam("nope"), ctx.IdempotencyKey(), ctx.Response().UpstreamError(), ctx.Response().Header("nope")}
			for i, v := range got {
				if v != "" {
					ctx.Error(fmt.Errorf("absent value %d read as %q", i, v))
					return
				}
			}
			if l := lookups(ctx); l != "header=false: param=false: query=false: config=false: response_header=false:" {
				ctx.Error(fmt.Errorf("absent values looked up as %s", l))
				return
			}
			// wasmhost answers an empty request body as present with
			// length 0; Body still returns nil, as documented.
			if len(req.Headers()) != 0 || len(req.Params()) != 0 || len(req.Query()) != 0 ||
				len(ctx.ConfigMap()) != 0 || !req.Timestamp().IsZero() || req.Body() != nil ||
				ctx.Response().Status() != 0 || ctx.Response().ChunkIndex() != -1 {
				ctx.Error(errors.New("absent lists or numbers read as non-zero"))
				return
			}
			ctx.End()
		case "/lookup":
			// Present but empty values are told from absent ones, by the
			// node's keyed reads and by the maps the SDK caches alike.
			before := lookups(ctx)
			req.Headers()
			req.Params()
			req.Query()
			ctx.ConfigMap()
			if after := lookups(ctx); after != before {
				ctx.Error(fmt.Errorf("lookups changed once the maps were read: %s, then %s", before, after))
				return
			}
			res.BodyText(before)
			ctx.End()
		case "/noop":
			// The benchmarks' floor: nothing but the path read.
		case "/panic":
			var m map[string]int
			m["boom"]++ // a runtime panic, not just panic()
		case "/error":
			ctx.Error(errors.New("handler says no"))
		case "/text":
			res.SetStatus(201)
			res.BodyText("plain")
			ctx.End()
		case "/write":
			res.Body([]byte("a"))
			fmt.Fprintf(res, "%d-%s", 1, "b")
			ctx.End()
		case "/html":
			res.BodyHTML("<p>hi</p>")
			ctx.End()
		case "/redirect":
			res.Redirect("/new", 0)
			res.Redirect("/bad", 200) // refused: not a redirect code
			res.SetStatus(42)         // refused: not a status
			if !errors.Is(ctx.Err(), sdk.ErrBadArgument) {
				ctx.Error(fmt.Errorf("ctx.Err() = %v, want ErrBadArgument", ctx.Err()))
				return
			}
			ctx.End()
		case "/status":
			for _, code := range []int{100, 101, 199, 600, 999} {
				// The SDK refuses these itself; the node refuses them too,
				// for guests that call the ABI without the SDK.
				if rc := abi.WriteNum(abi.OpSetResponseStatus, int64(code), ""); rc != abi.ResultBadArgument {
					ctx.Error(fmt.Errorf("the node took status %d: result %d, want %d", code, rc, abi.ResultBadArgument))
					return
				}
				res.SetStatus(code)
				if !errors.Is(ctx.Err(), sdk.ErrBadArgument) {
					ctx.Error(fmt.Errorf("SetStatus(%d): ctx.Err() = %v, want ErrBadArgument", code, ctx.Err()))
					return
				}
			}
			res.SetStatus(599)
			ctx.End()
		case "/cookies":
			// Two values of one header: set, then add.
			res.SetHeader("Set-Cookie", "a=1")
			res.AddHeader("Set-Cookie", "b=2; Path=/")
			res.AddHeader("Set-Cookie", "c=3\r\nInjected: 1") // refused: a header split
			if !errors.Is(ctx.Err(), sdk.ErrBadArgument) {
				ctx.Error(fmt.Errorf("AddHeader with CR LF: ctx.Err() = %v, want ErrBadArgument", ctx.Err()))
				return
			}
			res.AddHeader("Bad Name", "x") // refused: not a token
			ctx.End()
		case "/upstream-headers":
			req.SetHeader("X-Up", "1")
			req.RemoveHeader("Cookie")
			res.SetHeader("X-Resp", "1")
			res.RemoveHeader("X-Gone")
			res.Body([]byte("bytes"))
			// The default action is Next.
		case "/log":
			log := ctx.Log().With("a", 1).WithGroup("g")
			log.Info("hello world", "k", "v w", slog.Group("sub", "x", true), "e", errors.New("bad=thing"))
			ctx.Log().Debug("debug", "dur", 1500*1e6, "empty", "")
			ctx.Log().LogAttrs(context.Background(), slog.LevelError, "error", slog.Float64("f", 0.5), slog.Uint64("u", 7))
		default:
			ctx.Error(fmt.Errorf("no case for %s", req.Path()))
		}
	})

	sdk.ResponseFilter(func(ctx *sdk.Context) {
		if ctx.Request().Path() == "/client-ip" {
			return
		}
		res := ctx.Response()
		if cookie := ctx.Config("add_cookie"); cookie != "" {
			res.AddHeader("Set-Cookie", cookie)
			if err := ctx.Err(); err != nil {
				ctx.Error(err)
			}
			return
		}
		u := upstream{
			Status: res.Status(), Header: res.Header("x-up"), Body: string(res.ReadBody()),
			BodyLength: res.BodyLength(), DurationMS: res.Duration().Milliseconds(), UpstreamError: res.UpstreamError(),
		}
		v, ok := res.LookupHeader("e")
		u.LookupE = strconv.FormatBool(ok) + ":" + v
		u.Headers = res.Headers()
		if err := res.BodyJSON(u); err != nil {
			ctx.Error(err)
		}
	})

	sdk.ResponseBodyFilter(func(ctx *sdk.Context) {
		if ctx.Request().Path() == "/client-ip" {
			return
		}
		res := ctx.Response()
		// The status and headers are already sent: the SDK refuses these,
		// where the node would take them and the gateway drop them.
		res.SetHeader("X-Chunk", "1")
		res.AddHeader("Set-Cookie", "chunk=1")
		res.RemoveHeader("Server")
		res.SetStatus(201)
		res.Redirect("/elsewhere", 0)
		if err := ctx.Err(); !errors.Is(err, sdk.ErrNotAllowed) {
			ctx.Error(fmt.Errorf("header write in response_body_filter: ctx.Err() = %v, want ErrNotAllowed", err))
			return
		}
		chunk := res.ReadBody()
		res.Body([]byte(strconv.Itoa(res.ChunkIndex()) + "," + strconv.FormatBool(res.LastChunk()) + ":" + string(bytes.ToUpper(chunk))))
	})

	sdk.Logging(func(ctx *sdk.Context) {
		// Response writes are not allowed in logging: the node refuses and
		// the SDK reports the first refusal, typed.
		ctx.Response().SetHeader("X-Late", "1")
		ctx.Response().AddHeader("Set-Cookie", "late=1")
		ctx.Request().SetHeader("X-Late", "1")
		err := ctx.Err()
		var we *sdk.WriteError
		ctx.Log().Info("refused",
			"err", err,
			"not_allowed", errors.Is(err, sdk.ErrNotAllowed),
			"as", errors.As(err, &we) && we.Method == 100,
		)
	})

	sdk.OnOpen(func(ws *sdk.WebSocket) {
		if ws.Request().Path() == "/client-ip" {
			// The client address and scheme the edge gave the events
			// (the trusted-proxy tests); the connection stays open.
			ws.Send("client_ip " + ws.Request().ClientIP() + " " + ws.Request().Scheme())
			return
		}
		ws.Send("welcome " + ws.ID() + " to " + ws.Request().Path() + " " + ws.Config("greeting"))
		ws.SendBinary([]byte{0, 1, 2})
		if err := ws.JoinRoom(""); !errors.Is(err, sdk.ErrBadArgument) {
			ws.Send("JoinRoom(\"\") = " + fmt.Sprint(err))
		}
		ws.JoinRoom("r")
		ws.Broadcast("r", "hi", sdk.ExcludeSender())
		ws.BroadcastBinary("r", []byte{9})
		ws.LeaveRoom("r")
		if err := ws.Close(999, ""); !errors.Is(err, sdk.ErrBadArgument) {
			ws.Send("Close(999) = " + fmt.Sprint(err))
		}
		ws.Close(4000, "bye")
	})

	sdk.OnMessage(func(ws *sdk.WebSocket, msg sdk.Message) {
		if msg.Text() == "fail" {
			ws.Send("not applied")
			ws.Error(errors.New("refused: fail"))
			return
		}
		// ID reads into the SDK's shared buffer after the payload was read:
		// msg.Data must not be clobbered by it.
		id := ws.ID()
		if msg.Binary {
			ws.SendBinary(msg.Data)
		} else {
			ws.Send(msg.Text())
		}
		ws.Send(id + " " + strconv.Itoa(len(msg.Data)))
	})

	sdk.OnClose(func(ws *sdk.WebSocket, code int, reason string) {
		ws.Log().Warn("closed", "conn", ws.ID(), "code", code, "reason", reason)
	})
}

// lookups reports the Lookup reads of the names /lookup's test sets empty
// ("e"), as name=found:value.
func lookups(ctx *sdk.Context) string {
	req := ctx.Request()
	var b strings.Builder
	for _, l := range []struct {
		name string
		fn   func(string) (string, bool)
	}{
		{"header", req.LookupHeader}, {"param", req.LookupParam}, {"query", req.LookupQueryParam},
		{"config", ctx.LookupConfig}, {"response_header", ctx.Response().LookupHeader},
	} {
		v, ok := l.fn("e")
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%t:%s", l.name, ok, v)
	}
	return b.String()
}

func main() {}
