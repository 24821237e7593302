package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

// nullWriter is a ResponseWriter that keeps nothing, so that writing
// through the recorder allocates only what the recorder does.
type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(int)             {}

// With the access log off (the default), what the request path does for
// it costs no allocation: counting the body bytes as they are written,
// and the end of a request in finish. On, with a logger that drops INFO,
// neither: the line's attributes are only built for a logger that writes
// them.
func TestAccessLogOffAllocatesNothing(t *testing.T) {
	nc := testutil.Connect(t, testutil.RunNATS(t))
	cfg, err := ParseConfig("t.yaml", []byte(`
routes:
  - {path: /a, upstream: "http://127.0.0.1:1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	warnOnly := slog.New(slog.NewTextHandler(&testutil.SyncBuffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"off", nil},
		{"on, INFO dropped", []Option{WithAccessLog(warnOnly)}},
	} {
		g, err := New(*cfg, nc, append(tc.opts, WithRegisterer(prometheus.NewRegistry()), WithLogger(slog.New(slog.DiscardHandler)))...)
		if err != nil {
			t.Fatal(err)
		}
		rt := g.table.Load().exact["/a"][0]
		r := httptest.NewRequest(http.MethodGet, "/a", nil)
		r.Header.Set("User-Agent", "test")
		ex := &exchange{g: g, rt: rt, req: r, ctx: r.Context(), start: time.Now(),
			rec:  recorder{ResponseWriter: &nullWriter{h: http.Header{}}},
			meta: callMeta{trace: nextTraceparent(""), route: rt.pattern}}
		body := []byte("hello")
		if n := testing.AllocsPerRun(200, func() { _, _ = ex.rec.Write(body) }); n != 0 {
			t.Errorf("%s: a body write: %v allocations, want 0", tc.name, n)
		}
		if n := testing.AllocsPerRun(200, func() { ex.finish(false) }); n != 0 {
			t.Errorf("%s: finish: %v allocations, want 0", tc.name, n)
		}
		if err := g.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
