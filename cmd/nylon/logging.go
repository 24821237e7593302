package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// logFlags are the logging flags every long-running command shares.
type logFlags struct {
	Level  string
	Format string
}

func (l *logFlags) register(f *flagSet) {
	f.String(&l.Level, "log-level", "level", "NYLON_LOG_LEVEL", "info", "log level: trace, debug, info, warn or error")
	f.String(&l.Format, "log-format", "format", "NYLON_LOG_FORMAT", "text", "log format: text or json")
}

func (l logFlags) level() (slog.Level, error) {
	switch strings.ToLower(l.Level) {
	case "trace":
		return natsconn.LevelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level: %q is not trace, debug, info, warn or error", l.Level)
}

func (l logFlags) validate() error {
	if _, err := l.level(); err != nil {
		return err
	}
	if l.Format != "text" && l.Format != "json" {
		return fmt.Errorf("--log-format: %q is not text or json", l.Format)
	}
	return nil
}

// logger returns the slog.Logger writing to w; call validate first.
func (l logFlags) logger(w io.Writer) *slog.Logger {
	level, _ := l.level()
	opts := &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey {
				if lv, ok := a.Value.Any().(slog.Level); ok && lv <= natsconn.LevelTrace {
					a.Value = slog.StringValue("TRACE")
				}
			}
			return a
		},
	}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
