package logsample

import (
	"context"
	"log/slog"
)

// Handler returns a slog.Handler that writes to next the records s allows:
// each WARN and ERROR record is keyed by its message and the values of the
// attributes named in keyAttrs (at most two; the first value of each, by
// its first 128 bytes as in KeyOf), and
// sampled like Allow; records below WARN pass untouched. It is for
// per-request lines written by code that is handed a *slog.Logger rather
// than the sampler, such as the checks of a plugin's header ops: give it
// slog.New(s.Handler(log.Handler(), "header")) instead of log.
//
// Records reach next as they are, with the attributes and groups of the
// handler's With calls; those attributes are not part of the key.
func (s *Sampler) Handler(next slog.Handler, keyAttrs ...string) slog.Handler {
	if len(keyAttrs) > 2 {
		keyAttrs = keyAttrs[:2]
	}
	return &handler{s: s, next: next, keyAttrs: keyAttrs}
}

type handler struct {
	s        *Sampler
	next     slog.Handler
	keyAttrs []string
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && !h.s.Allow(ctx, r.Level, h.key(r)) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// key is r's message with the first value of each of keyAttrs.
func (h *handler) key(r slog.Record) Key {
	k := Key{msg: r.Message}
	if len(h.keyAttrs) == 0 {
		return k
	}
	r.Attrs(func(a slog.Attr) bool {
		for i, name := range h.keyAttrs {
			if a.Key == name && k.kv[2*i] == "" {
				k.kv[2*i], k.kv[2*i+1] = name, cutKeyValue(a.Value.String())
			}
		}
		return true
	})
	return k
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{s: h.s, next: h.next.WithAttrs(attrs), keyAttrs: h.keyAttrs}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{s: h.s, next: h.next.WithGroup(name), keyAttrs: h.keyAttrs}
}
