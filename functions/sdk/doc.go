// Package sdk is the Go SDK for Nylon Functions: write a handler in Go, build
// it as a WebAssembly reactor, deploy it, and the platform runs it for every
// request, response, log line or WebSocket event of the routes it is bound to.
//
// It has the shape of the Nylon Go SDK (Request(), Response(), Next(),
// End(), Error(), IdempotencyKey(), WebSocket Send/JoinRoom/LeaveRoom/
// Broadcast), on
// top of the Nylon guest ABI v1 (functions/internal/abi): the node decodes
// each invocation natively and the handler reads only the values it asks for,
// so a warm call costs a few microseconds.
//
// # Writing a function
//
// The package is part of the module github.com/nylon-functions/nylon, which
// has no published release: a function outside that repository requires it
// with a replace directive pointing at a checkout (functions/README.md,
// "Set up a module outside this repository").
//
// Register handlers in func init(): a reactor module never runs main.main,
// but the node runs every package's init when it creates an instance (the
// module's `_initialize` export). Keep an empty func main() so the package
// builds as a program.
//
// A handler that returns without calling Next, End or Error continues the
// request (Next). That suits a plugin in front of an upstream; a function
// deployed on a route (nylon deploy --route) is the origin and must End, or
// the gateway answers 502 origin-not-ended.
//
// Next, End and Error record the verdict; the last one called wins. Reads
// of a missing value return "" (or nil, 0); the Lookup methods
// (Request.LookupHeader, LookupQueryParam, LookupParam,
// Context.LookupConfig, Response.LookupHeader) tell it from an empty one.
// A write the node refuses does not fail the call: it is reported by
// Context.Err (a *WriteError), and WebSocket operations return it.
//
// A panic in a handler is recovered: the call answers with action Error and
// the panic text, the stack goes to the node's log as one error record
// ("sdk: handler panicked"), and the instance stays usable for the next
// call. Runtime
// fatal errors (out of memory, concurrent map writes, a deadlock) are not
// panics: they trap the instance, which the node discards. Either way, and
// for a call past its timeout, a client of the gateway gets a 500 (or the
// status the handler had set) application/problem+json answer of type
// plugin-error (see Context.Error).
//
// # Lifetimes
//
// An instance serves one call at a time and is reused for many. The
// *Context, *Request, *Response and *WebSocket a handler receives, and the
// Data of a Message, are reused by the next call: use them only until the
// handler returns and copy what must outlive it. State kept in package
// variables or closures lives as long as the instance, which the node may
// replace at any time: use it for caches and counters, never for data that
// must survive. The calls of one request, the chunks of one body and the
// events of one WebSocket connection may each run on a different instance
// or node.
//
// Registration panics on wiring mistakes (a nil handler, the same phase
// registered twice): the module then fails to instantiate and the platform
// rejects the upload (422 invalid module, with a stack trace through
// main.init and the panic's text, the first line the module wrote to
// stderr: (guest stderr: "panic: sdk: RequestFilter: nil handler")). A
// module that registers no handler is refused too ("nylon_phases returned
// 0x0").
//
// # Example
//
//	package main
//
//	import "github.com/nylon-functions/nylon/functions/sdk"
//
//	func init() {
//		sdk.RequestFilter(func(ctx *sdk.Context) {
//			name := ctx.Request().QueryParam("name")
//			if name == "" {
//				name = "world"
//			}
//			res := ctx.Response()
//			res.SetStatus(200)
//			res.BodyText("hello, " + name)
//			ctx.End()
//		})
//	}
//
//	func main() {}
//
// Build it with Go's wasip1 port, as a reactor (-buildmode=c-shared: without
// it the upload is refused with missing export "_initialize"), and deploy
// it on a route:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o hello.wasm .
//	nylon deploy hello hello.wasm --route /hello --wait 1m
//	curl 'http://127.0.0.1:8080/hello?name=you'
//
// Handler log records (Context.Log) and the guest's stdout and stderr go to
// the log of the nylon serve that runs the node.
//
// The package also builds for the host (so `go vet ./...` and editors work),
// where every read reports "absent" and every write is refused. To test a
// handler, build the module and call it through package wasmhost, as a node
// does, without NATS: functions/README.md, "Test a handler without NATS".
package sdk
