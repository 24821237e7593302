package sdk

import (
	"log/slog"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// Context is one invocation of an HTTP phase handler: the request, the
// response being built, and the handler's verdict.
//
// It is reused by the next call (see the package doc's Lifetimes).
type Context struct {
	g      *instance
	phase  Phase
	action int32
	err    error // the first write the node refused

	req  Request
	resp Response

	// Per-call caches.
	have   cached
	config map[string]string
	vals   [numCached]string
}

// cached is a bitmask of per-call values already read.
type cached uint32

// Values cached per call, indexes into Context.vals.
const (
	cMethod = iota
	cPath
	cURL
	cRawQuery
	cHost
	cScheme
	cClientIP
	cRequestID
	cWSID
	numCached
)

// reset prepares c for a new call.
func (c *Context) reset(g *instance, phase Phase) {
	*c = Context{g: g, phase: phase, action: abi.ActionNext}
	c.req.c = c
	c.resp.c = c
}

// Phase reports the phase this call runs in.
func (c *Context) Phase() Phase { return c.phase }

// Request returns the client's request (the WebSocket upgrade request in
// WebSocket handlers).
func (c *Context) Request() *Request { return &c.req }

// Response returns the response: the upstream's in response phases, and the
// writes that change or replace it.
func (c *Context) Response() *Response { return &c.resp }

// Next continues the request: the next handler, or the upstream. It is the
// default when a handler returns without calling Next, End or Error.
//
// Next, End and Error only record the verdict, which the caller reads when
// the handler returns: the handler goes on running after them, and the
// last one called wins (End after Error answers End, and Error's text is
// dropped). Return right after calling one.
//
// In request_filter a handler that continues keeps only its header writes
// (of the upstream request, and of the response, applied to the response
// that comes back); a status or body it wrote takes effect only with End.
func (c *Context) Next() { c.action = abi.ActionNext }

// End, in request_filter, answers the request with the response written
// so far (status 200 unless SetStatus was called): the upstream, the later
// plugins and the response phases are not called; logging is. A function
// deployed on a route (nylon deploy --route) is the request's origin: its
// request_filter must End, or the gateway answers 502 origin-not-ended.
// In the other phases End means the same as Next: the writes apply either
// way. See Next for calling it more than once.
func (c *Context) End() { c.action = abi.ActionEnd }

// Error fails the call: the caller applies its on_error policy (continue,
// end or retry) and err's text is reported as the plugin error.
//
// A client of the gateway then gets an application/problem+json answer of
// type plugin-error: status 500 with the detail "<phase> failed" (err's
// text goes only to the gateway's log), or, when the handler set a status
// with Response().SetStatus before calling Error, that status with err's
// text as the detail, which the client sees. Errors are not retried. To
// answer with a body of your own, write it and call End instead.
//
// Error(nil) fails with the text "unknown error". The last call's text is
// the one reported; see Next for calling Error and then End or Next.
func (c *Context) Error(err error) {
	text := "unknown error"
	if err != nil {
		text = err.Error()
	}
	abi.Write(abi.MethodError, text, "")
	c.action = abi.ActionError
}

// Err returns the first write of this call that the node (or the SDK)
// refused, as a *WriteError, or nil. Setters without an error result
// (SetHeader, SetStatus, Body, ...) report their refusals here. A refused
// write does not fail the call by itself: a handler that must not answer
// without it checks Err and calls Error:
//
//	res.Body(page)
//	if err := ctx.Err(); err != nil {
//		ctx.Error(err) // e.g. write[set response body]: output too large
//		return
//	}
//	ctx.End()
func (c *Context) Err() error { return c.err }

// IdempotencyKey returns the request id, a UUID in its text form
// ("0190b6c2-7f3a-7c4e-9a7b-2f1e0d9c8b7a"): the same for every attempt and
// phase of one request, so a handler with side effects can deduplicate
// retries. It is "" when the caller sent none (nylon invoke sends one).
func (c *Context) IdempotencyKey() string { return c.cachedString(cRequestID, abi.ReadRequestID, "") }

// Config returns the value of key in this function's config, or "" when it
// is not set. The config is the deployment's (nylon deploy --config
// key=value, one flag per pair), under the gateway YAML's plugin and route
// config where the function runs as a plugin: a key the gateway sends wins.
func (c *Context) Config(key string) string {
	v, _ := c.LookupConfig(key)
	return v
}

// LookupConfig is Config that also reports whether key is set, so that a
// key set to "" (deploy --config key=) can be told from a missing one.
func (c *Context) LookupConfig(key string) (string, bool) {
	if key == "" {
		return "", false
	}
	if c.config != nil {
		v, ok := c.config[key]
		return v, ok
	}
	return c.g.lookupString(abi.ReadConfig, key)
}

// ConfigMap returns every config pair. The map is the SDK's until the call
// ends: read it, do not keep it.
func (c *Context) ConfigMap() map[string]string {
	if c.config == nil {
		c.config = map[string]string{}
		if b, ok := c.g.read(abi.ReadConfig, ""); ok {
			eachPair(b, func(k, v string) { c.config[k] = v })
		}
	}
	return c.config
}

// Log returns a logger whose records go to the node's log (the stderr of
// the nylon serve that runs it), tagged function=<name>@<version>, phase
// and request_id. Attributes are written as key=value after the message,
// inside the record's msg. Records below the node's --log-level (default
// info) are dropped, and so are those past the node's rate limit for the
// function (50 a second, bursts of 100, guest stdout and stderr included).
func (c *Context) Log() *slog.Logger { return c.g.logger }

// cachedString reads a scalar value once per call. A value equal to the
// previous call's (the method, scheme, host, often the path) reuses that
// string: an allocation costs more inside WebAssembly than the comparison.
func (c *Context) cachedString(i int, method uint32, key string) string {
	if c.have&(1<<i) == 0 {
		v := ""
		if b, ok := c.g.read(method, key); ok {
			if prev := c.g.lastVals[i]; prev == string(b) {
				v = prev
			} else {
				v = string(b)
				c.g.lastVals[i] = v
			}
		}
		c.vals[i] = v
		c.have |= 1 << i
	}
	return c.vals[i]
}

// check records the first refused write and returns the write's error.
func (c *Context) check(method uint32, rc int32) error {
	if rc == abi.ResultOK {
		return nil
	}
	err := writeErr(method, rc)
	if c.err == nil {
		c.err = err
	}
	return err
}
