// Package sdk is the Go SDK for Nylon Functions: write a handler in Go, build
// it as a WebAssembly reactor, deploy it, and the platform runs it for every
// request, response, log line or WebSocket event of the routes it is bound to.
//
// It has the shape of the Nylon Go SDK (Request(), Response(), Next(),
// End(), Error(), IdempotencyKey(), WebSocket Send/JoinRoom/Broadcast), on
// top of the Nylon guest ABI v1 (functions/internal/abi): the node decodes
// each invocation natively and the handler reads only the values it asks for,
// so a warm call costs a few microseconds.
//
// # Writing a function
//
// Register handlers in func init(): a reactor module never runs main.main,
// but the node runs every package's init when it creates an instance (the
// module's `_initialize` export). Keep an empty func main() so the package
// builds as a program.
//
// A handler that returns without calling Next, End or Error continues the
// request (Next). A panic in a handler is recovered: the call answers with
// action Error and the panic text, and the instance stays usable for the next
// call. Runtime fatal errors (out of memory, concurrent map writes, a
// deadlock) are not panics: they trap the instance, which the node discards.
//
// # Lifetimes
//
// An instance serves one call at a time and is reused for many. The
// *Context, *Request, *Response and *WebSocket a handler receives, and the
// Data of a Message, are reused by the next call: use them only until the
// handler returns and copy what must outlive it. State kept in package
// variables or closures lives as long as the instance, which the node may
// replace at any time: use it for caches and counters, never for data that
// must survive.
//
// Registration panics on wiring mistakes (a nil handler, the same phase
// registered twice): the module then fails to instantiate and the platform
// rejects the upload.
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
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//
// The package also builds for the host (so `go vet ./...` and editors work),
// where every read reports "absent" and every write is refused.
package sdk
