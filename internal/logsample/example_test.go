package logsample_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/nylon-functions/nylon/internal/logsample"
)

// Twelve failures of one route in a burst: three lines are written, and
// Flush (or, without it, the end of the interval) reports the other nine.
func Example() {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	s := logsample.New(log, logsample.Config{First: 3, Interval: time.Minute})
	ctx := context.Background()
	k := logsample.KeyOf("gateway: request failed", "route", "/api")
	for i := range 12 {
		if s.Allow(ctx, slog.LevelWarn, k) {
			log.Warn("gateway: request failed", "route", "/api", "n", i)
		}
	}
	s.Flush()
	// Output:
	// level=WARN msg="gateway: request failed" route=/api n=0
	// level=WARN msg="gateway: request failed" route=/api n=1
	// level=WARN msg="gateway: request failed" route=/api n=2
	// level=WARN msg="gateway: request failed" suppressed=9 interval=1m0s route=/api
}
