package sdk

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestLogFormat(t *testing.T) {
	h := &logHandler{g: &instance{}}
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	cases := []struct {
		name    string
		handler slog.Handler
		msg     string
		attrs   []slog.Attr
		want    string
	}{
		{"plain", h, "hello", nil, "hello"},
		{"kinds", h, "m", []slog.Attr{
			slog.String("s", "v"), slog.Int("i", -3), slog.Uint64("u", 4), slog.Float64("f", 0.25),
			slog.Bool("b", true), slog.Duration("d", 1500*time.Millisecond), slog.Time("t", at),
			slog.Any("err", errors.New("boom")), slog.Any("n", nil),
		}, "m s=v i=-3 u=4 f=0.25 b=true d=1.5s t=2025-01-02T03:04:05.000000006Z err=boom n=<nil>"},
		{"quoting", h, "m", []slog.Attr{
			slog.String("space", "a b"), slog.String("eq", "a=b"), slog.String("quote", `a"b`),
			slog.String("empty", ""), slog.String("nl", "a\nb"), slog.String("bad", "\xff"), slog.String("uni", "é"),
		}, `m space="a b" eq="a=b" quote="a\"b" empty="" nl="a\nb" bad="\xff" uni=é`},
		{"groups", h.WithAttrs([]slog.Attr{slog.Int("a", 1)}).WithGroup("g").WithAttrs([]slog.Attr{slog.Int("b", 2)}), "m",
			[]slog.Attr{slog.Group("sub", slog.Int("c", 3)), slog.Group("", slog.Int("inline", 4)), slog.Group("empty")},
			"m a=1 g.b=2 g.sub.c=3 g.inline=4"},
		{"empty group name and attrs are no-ops", h.WithGroup("").WithAttrs(nil), "m", []slog.Attr{{}}, "m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := slog.NewRecord(at, slog.LevelInfo, tc.msg, 0)
			r.AddAttrs(tc.attrs...)
			lh := tc.handler.(*logHandler)
			if got := string(lh.appendRecord(nil, r)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if !lh.Enabled(t.Context(), slog.LevelDebug) {
				t.Error("debug not enabled: the node filters, not the guest")
			}
			if err := lh.Handle(t.Context(), r); err != nil {
				t.Errorf("Handle: %v", err)
			}
		})
	}
}

// TestLogValuerLogging checks a LogValuer that logs while being resolved does
// not corrupt the record being formatted.
func TestLogValuerLogging(t *testing.T) {
	g := newInstance()
	v := reentrant{log: g.logger}
	g.logger.Info("outer", "v", v)
	if string(g.logBuf) != "outer v=inner-value" {
		t.Fatalf("formatted %q", g.logBuf)
	}
}

type reentrant struct{ log *slog.Logger }

func (r reentrant) LogValue() slog.Value {
	r.log.Info("inner while resolving")
	return slog.StringValue("inner-value")
}
