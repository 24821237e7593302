// Command logger is a logging-phase function: after each response it logs
// one line with the method, path, status, upstream duration and request id,
// plus the number of calls this instance has served.
//
// Config:
//   - message: the log message (default "request").
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o logger.wasm .
package main

import (
	"context"
	"log/slog"

	"github.com/nylon-functions/nylon/functions/sdk"
)

func init() {
	// calls lives as long as the instance: a node runs several instances
	// and replaces them at will, so it counts this instance's calls only.
	var calls int64
	sdk.Logging(func(ctx *sdk.Context) {
		calls++
		msg := ctx.Config("message")
		if msg == "" {
			msg = "request"
		}
		req, res := ctx.Request(), ctx.Response()
		level := slog.LevelInfo
		status := res.Status()
		if status >= 500 || res.UpstreamError() != "" {
			level = slog.LevelWarn
		}
		ctx.Log().LogAttrs(context.Background(), level, msg,
			slog.String("method", req.Method()),
			slog.String("path", req.Path()),
			slog.Int("status", status),
			slog.Duration("duration", res.Duration()),
			slog.String("request_id", ctx.IdempotencyKey()),
			slog.Int64("calls", calls),
		)
	})
}

// main is never run: a reactor module starts from its init functions.
func main() {}
