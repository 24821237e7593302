// Command footer is a response_body_filter that appends a footer (a build
// banner, a snippet) to the bodies of HTML responses: every chunk of the
// body goes through unchanged, and the footer follows the last one.
//
// Config:
//   - footer: the text appended (default "\n<!-- served through nylon -->\n").
//   - types: comma-separated media types whose bodies get it (default
//     "text/html"; compared without parameters and case).
//
// What every body filter must know, shown here:
//   - The body comes in chunks (32 KiB by default), each in a call of its
//     own, which may run on another instance or node than the chunk before:
//     keep no state between chunks in package variables, and read what the
//     decision needs (here Content-Type) in every call.
//   - The status and headers are sent before the first chunk: a body filter
//     writes bodies only. The gateway sends the body chunked, without
//     Content-Length, so a longer body is fine.
//   - An encoded body (Content-Encoding: gzip, br, ...) is bytes the filter
//     cannot append text to: it goes through untouched.
//   - An empty body is one empty last chunk, so it gets the footer too.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o footer.wasm .
package main

import (
	"strings"

	"github.com/nylon-functions/nylon/functions/sdk"
)

const defaultFooter = "\n<!-- served through nylon -->\n"

func init() {
	sdk.ResponseBodyFilter(func(ctx *sdk.Context) {
		res := ctx.Response()
		if !res.LastChunk() || !wanted(ctx, res) {
			return // Next without a body write: the chunk goes out as it came
		}
		footer, ok := ctx.LookupConfig("footer")
		if !ok {
			footer = defaultFooter // footer= (empty) turns it off
		}
		res.Body(append(res.ReadBody(), footer...))
		if err := ctx.Err(); err != nil {
			// The body write was refused (e.g. the chunk and footer over
			// the output limit), so the chunk goes out as it came. That
			// beats ctx.Error, which in this phase aborts the half-sent
			// response (unless the plugin's on_error is continue): log it
			// and let the page be.
			ctx.Log().Warn("footer not added", "err", err)
		}
	})
}

// wanted reports whether the response's body gets the footer: an
// unencoded body of one of the configured media types.
func wanted(ctx *sdk.Context, res *sdk.Response) bool {
	if enc := res.Header("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return false
	}
	mediaType, _, _ := strings.Cut(res.Header("Content-Type"), ";")
	mediaType = strings.TrimSpace(mediaType)
	if mediaType == "" {
		return false
	}
	types := ctx.Config("types")
	if types == "" {
		types = "text/html"
	}
	for t := range strings.SplitSeq(types, ",") {
		if strings.EqualFold(strings.TrimSpace(t), mediaType) {
			return true
		}
	}
	return false
}

// main is never run: a reactor module starts from its init functions.
func main() {}
