// Command hello is a request_filter responder: it answers every request
// itself with {"message":"hello, <name>"}, where name comes from the query
// parameter `name`, else the route parameter `name`, else "world".
//
// It builds its small JSON body by hand into a reused buffer: inside
// WebAssembly, reflective encoding/json would cost more than the rest of the
// call (see sdk.AppendJSONString). Response.BodyJSON is the convenient choice
// where a few microseconds do not matter.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
package main

import "github.com/nylon-functions/nylon/functions/sdk"

func init() {
	// body is reused by every call of this instance: the node copies a
	// body when Body is called, so the buffer is free again right after.
	var body []byte
	sdk.RequestFilter(func(ctx *sdk.Context) {
		req := ctx.Request()
		name := req.QueryParam("name")
		if name == "" {
			name = req.Param("name")
		}
		if name == "" {
			name = "world"
		}
		body = append(body[:0], `{"message":`...)
		body = sdk.AppendJSONString(body, "hello, "+name)
		body = append(body, '}')

		res := ctx.Response()
		res.SetStatus(200)
		res.SetHeader("Content-Type", "application/json")
		res.Body(body)
		if err := ctx.Err(); err != nil {
			ctx.Error(err)
			return
		}
		ctx.End()
	})
}

// main is never run: a reactor module starts from its init functions.
func main() {}
