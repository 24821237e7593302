package sdk

import (
	"context"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nylon-functions/nylon/functions/internal/abi"
)

// logHandler is the slog.Handler behind Context.Log: it formats a record as
// `message key=value ...` and hands it to the node's log through the `log`
// import, which adds the time, level and function name. Filtering by level
// is the node's job, so every level is enabled here.
type logHandler struct {
	g      *instance
	attrs  []byte // preformatted " key=value" pairs from WithAttrs
	prefix string // group prefix from WithGroup, e.g. "http."
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	// Take the shared buffer for the duration of the call, so a LogValuer
	// that logs while being resolved gets a buffer of its own.
	buf := h.g.logBuf[:0]
	h.g.logBuf = nil
	buf = h.appendRecord(buf, r)
	abi.Log(int32(r.Level), buf)
	h.g.logBuf = buf
	return nil
}

func (h *logHandler) appendRecord(buf []byte, r slog.Record) []byte {
	buf = append(buf, r.Message...)
	buf = append(buf, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		buf = appendAttr(buf, h.prefix, a)
		return true
	})
	return buf
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = append([]byte{}, h.attrs...)
	for _, a := range as {
		h2.attrs = appendAttr(h2.attrs, h.prefix, a)
	}
	return &h2
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// appendAttr appends " prefix.key=value", flattening groups into dotted keys
// as slog's TextHandler does.
func appendAttr(buf []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			buf = appendAttr(buf, p, ga)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = appendText(buf, prefix+a.Key)
	buf = append(buf, '=')
	v := a.Value
	switch v.Kind() {
	case slog.KindInt64:
		return strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(buf, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(buf, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(buf, v.Bool())
	case slog.KindDuration:
		return append(buf, v.Duration().String()...)
	case slog.KindTime:
		return v.Time().AppendFormat(buf, time.RFC3339Nano)
	case slog.KindString:
		return appendText(buf, v.String())
	}
	if err, ok := v.Any().(error); ok {
		return appendText(buf, err.Error())
	}
	return appendText(buf, v.String())
}

// appendText appends s, quoted when it would not read back as one token.
func appendText(buf []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError {
			return true
		}
		i += size
	}
	return false
}
