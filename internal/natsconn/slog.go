package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// LevelTrace is the slog level of nats-server protocol traces, below Debug.
// Traces are only switched on in the server when the logger enables it.
const LevelTrace = slog.LevelDebug - 4

// serverLogger adapts slog to server.Logger for the embedded nats-server.
//
// Notices go to Debug: the server prints a banner of some twenty lines on
// start, and serve prints its own one-line summary. Fatalf must not exit the
// process as nats-server's own logger does; it logs at Error and records the
// first fatal message so Connect can fail fast with it instead of waiting
// for a readiness timeout.
type serverLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	fatal string
	fired chan struct{} // closed on the first Fatalf
}

var _ server.Logger = (*serverLogger)(nil)

func newServerLogger(log *slog.Logger) *serverLogger {
	return &serverLogger{log: log, fired: make(chan struct{})}
}

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, v...))
}

func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(LevelTrace, format, v) }

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "fatal", true)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal == "" {
		l.fatal = msg
		close(l.fired)
	}
}

// fatalMessage returns the first fatal message, or "".
func (l *serverLogger) fatalMessage() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}
