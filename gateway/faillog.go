package gateway

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nylon-functions/nylon/internal/logsample"
)

// Messages of the one line a failure gets (see logFailure).
const (
	msgRequestFailed = "gateway: request failed"
	msgPluginSkipped = "gateway: plugin skipped after error (on_error continue)"
	msgLoggingFailed = "gateway: logging call failed"
)

// failure is what the one log line of a failed request, a plugin skipped
// after an error or a failed logging call says.
type failure struct {
	msg     string
	meta    *callMeta
	plugin  string // the plugin the line is about, when err is no *CallError
	status  int    // the HTTP status answered; 0 when the request went on
	aborted bool   // the response was cut off after its headers
	// requestID is the request_id the client got in its problem; empty:
	// the failed call's.
	requestID string
	err       error
}

// logFailure writes the one line of a failure, with everything about it:
// route, plugin, phase, status, kind, attempts, whether and where it was
// dead-lettered, request_id, session_id, traceparent and the error. The
// attempts, the dead letter and the problem are only detail of it (DEBUG
// lines, when those are wanted).
//
// It is a WARN, an ERROR for a reply that could not be read (a protocol
// bug on one side or the other, not load), and a DEBUG for an answer the
// client is to fix (400, 413, a 4xx a plugin chose). WARN and ERROR lines
// are sampled per message, route and plugin (logsample): an error storm
// logs a few examples a second and a count of the rest, while the metrics
// count every failure.
func (g *Gateway) logFailure(ctx context.Context, f failure) {
	var ce *CallError
	isCall := errors.As(f.err, &ce)
	plugin, kind := f.plugin, ""
	if isCall {
		plugin, kind = ce.Plugin, ce.Kind
	} else {
		kind = kindBesidesCalls(f.err)
	}
	level := slog.LevelWarn
	switch {
	case f.status > 0 && f.status < 500 && !f.aborted:
		level = slog.LevelDebug
	case kind == KindDecode:
		level = slog.LevelError
	}
	if level == slog.LevelDebug {
		if !g.log.Enabled(ctx, level) {
			return
		}
	} else if !g.sampler.Allow(ctx, level, logsample.KeyOf(f.msg, "route", f.meta.route, "plugin", plugin)) {
		return
	}
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs, slog.String("route", f.meta.route))
	if plugin != "" {
		attrs = append(attrs, slog.String("plugin", plugin))
	}
	if isCall {
		attrs = append(attrs, slog.String("phase", ce.Phase.String()))
	}
	if f.status > 0 {
		attrs = append(attrs, slog.Int("status", f.status))
	}
	if f.aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	attrs = append(attrs, slog.String("kind", kind))
	rid := f.requestID
	if isCall {
		attrs = append(attrs, slog.Int("attempts", ce.Attempts), slog.Bool("dead_lettered", ce.dlqSubject != ""))
		if ce.dlqSubject != "" {
			attrs = append(attrs, slog.String("dlq_subject", ce.dlqSubject))
		}
		if rid == "" && !ce.RequestID.IsZero() {
			rid = ce.RequestID.String()
		}
	}
	if rid != "" {
		attrs = append(attrs, slog.String("request_id", rid))
	}
	attrs = append(attrs,
		slog.Uint64("session_id", uint64(f.meta.session)),
		slog.String("traceparent", f.meta.trace),
		slog.Any("error", f.err))
	g.log.LogAttrs(ctx, level, f.msg, attrs...)
}

// Kinds of failures that are no phase call's, for the log line.
const (
	kindUpstream        = "Upstream"
	kindUpstreamTimeout = "UpstreamTimeout"
	kindOriginNotEnded  = "OriginNotEnded"
	kindBadRequest      = "BadRequest"
)

// kindBesidesCalls names, for the log line, the kind of a failure that is
// no phase call's (those carry theirs in CallError.Kind).
func kindBesidesCalls(err error) string {
	switch {
	case errors.Is(err, errUpstreamTimeout):
		return kindUpstreamTimeout
	case errors.Is(err, errUpstream):
		return kindUpstream
	case errors.Is(err, ErrOriginNotEnded):
		return kindOriginNotEnded
	case errors.Is(err, errBodyTooLarge):
		return KindTooLarge
	case errors.Is(err, errBadRequest):
		return kindBadRequest
	}
	return KindInternal
}
