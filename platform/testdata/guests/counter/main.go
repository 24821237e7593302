// Command counter is the platform tests' guest: a request_filter that
// counts its calls and can be told to be slow, fail or trap.
//
// Each call increments a counter kept in the instance (a package variable)
// and answers End with status 200, body "ok" and headers:
//
//	X-Count:       calls this instance has handled, this one included
//	X-Request-Id:  ctx.IdempotencyKey()
//	X-Label:       the config value "label" (tells versions apart)
//	X-Body-Length: the length of the request body it was given
//
// Behaviour, from the query string, else from the config of the same name:
//
//	sleep=<duration>  time.Sleep first (a slow handler that does not spin)
//	spin=<duration>   busy-loop first (only a timeout interrupts it)
//	fail=<text>       answer Error with text
//	exit=<code>       os.Exit(code): the instance dies, the call traps
//	size=<n>          the body is n bytes of 'x' instead of "ok"
//	cookie=<value>    add a Set-Cookie header of value (Response.AddHeader);
//	                  every cookie parameter of the query adds one, in order
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o counter.wasm .
package main

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/nylon-functions/nylon/functions/sdk"
)

// calls counts this instance's calls; instances are reused one call at a
// time, so no lock.
var calls int

func init() {
	sdk.RequestFilter(func(ctx *sdk.Context) {
		calls++
		param := func(name string) string {
			if v := ctx.Request().QueryParam(name); v != "" {
				return v
			}
			return ctx.Config(name)
		}
		if d, err := time.ParseDuration(param("sleep")); err == nil && d > 0 {
			time.Sleep(d)
		}
		if d, err := time.ParseDuration(param("spin")); err == nil && d > 0 {
			for end := time.Now().Add(d); time.Now().Before(end); {
			}
		}
		if code := param("exit"); code != "" {
			n, _ := strconv.Atoi(code)
			os.Exit(n)
		}
		if text := param("fail"); text != "" {
			ctx.Error(errors.New(text))
			return
		}
		res := ctx.Response()
		res.SetStatus(200)
		res.SetHeader("X-Count", strconv.Itoa(calls))
		res.SetHeader("X-Request-Id", ctx.IdempotencyKey())
		res.SetHeader("X-Label", ctx.Config("label"))
		res.SetHeader("X-Body-Length", strconv.FormatInt(ctx.Request().BodyLength(), 10))
		cookies := ctx.Request().Query()["cookie"]
		if len(cookies) == 0 {
			if c, ok := ctx.LookupConfig("cookie"); ok {
				cookies = []string{c}
			}
		}
		for _, c := range cookies {
			res.AddHeader("Set-Cookie", c)
		}
		if n, err := strconv.Atoi(param("size")); err == nil && n >= 0 {
			res.Body(bytes.Repeat([]byte("x"), n))
		} else {
			res.BodyText("ok")
		}
		ctx.End()
	})
}

// main is never run: a reactor module starts from its init functions.
func main() {}
