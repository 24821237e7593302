// Package logsample bounds the per-request WARN and ERROR lines of the
// gateway, the platform node and the WebSocket edge, so that an error storm
// (a node down, a bad deploy: thousands of failed requests a second) cannot
// flood the logs operators need at that moment.
//
// A Sampler lets through, per key (a message and what it is about: a route
// and plugin, a subject), the first lines of each interval (10 a second by
// default) and counts the rest. Once an interval that dropped lines is over,
// one summary line with the same message says how many were suppressed:
//
//	level=WARN msg="gateway: request failed" suppressed=1234 interval=1s route=/api plugin=auth
//
// It is written by the next line of that key or, when none comes, by a
// timer within an interval, so a storm that stops still reports its count.
// Keys are capped (1024 by default); lines of further keys share one
// overflow key per message, whose summary is that message with
// sample_key=overflow (and, past 64 messages, "log lines suppressed"). A key keeps at most the first 128 bytes of each
// value, in memory of its own: values chosen outside the code (a refused
// header's name) cannot make the keys large. Metrics count every failure: read rates from them,
// examples from the logs.
//
// Only lines that repeat per request belong here. Start-up, configuration,
// reload and stream problems are rare and each one matters: log them
// directly.
//
// A Sampler belongs to the Gateway, Node or Edge that built it; there is
// no package-level state. It imports nothing from this project.
//
// # Example
//
//	s := logsample.New(log, logsample.Config{}) // 10 lines per key and second
//	k := logsample.KeyOf("gateway: request failed", "route", route, "plugin", plugin)
//	if s.Allow(ctx, slog.LevelWarn, k) {
//		log.LogAttrs(ctx, slog.LevelWarn, "gateway: request failed", attrs...)
//	}
package logsample
