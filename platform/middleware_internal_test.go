package platform

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRecovererAnswersProblem(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	h := withRequestID(recoverer(log)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	if rec.Code != 500 || rec.Header().Get("Content-Type") != contentTypeProblem {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Type != ProblemInternal || p.Instance != "/v1/x" || p.RequestID == "" {
		t.Fatalf("problem %+v (%v)", p, err)
	}
	if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), "stack=") {
		t.Errorf("the panic was not logged with its stack: %s", logs.String())
	}
	// net/http's own abort still aborts.
	abort := recoverer(log)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("ErrAbortHandler swallowed: %v", v)
			}
		}()
		abort.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
}

func TestBearerAuth(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	h := withRequestID(bearerAuth("tok")(ok))
	for _, c := range []struct {
		header string
		want   int
	}{
		{"", 401}, {"Bearer", 401}, {"Basic dG9r", 401}, {"Bearer tok2", 401}, {"Bearer to", 401},
		{"Bearer tok", 204}, {"bearer tok", 204}, {"Bearer  tok ", 204},
	} {
		req := httptest.NewRequest(http.MethodGet, "/v1/functions", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("Authorization %q: %d, want %d", c.header, rec.Code, c.want)
		}
		if c.want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: 401 without WWW-Authenticate", c.header)
		}
	}
	// No token: open (dev only; NewAdmin refuses it elsewhere).
	rec := httptest.NewRecorder()
	bearerAuth("")(ok).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 204 {
		t.Errorf("without a token: %d", rec.Code)
	}
}

func TestRequestIDAndAccessLog(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var seen string
	h := withRequestID(accessLog(log)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = RequestID(r.Context())
		w.WriteHeader(201)
		_, _ = io.WriteString(w, "hi")
	})))
	req := httptest.NewRequest(http.MethodPut, "/v1/functions/a", nil)
	req.Header.Set("X-Request-Id", "client-id-1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if seen != "client-id-1" || rec.Header().Get("X-Request-Id") != "client-id-1" {
		t.Errorf("client request id not kept: %q / %q", seen, rec.Header().Get("X-Request-Id"))
	}
	for _, want := range []string{"method=PUT", "path=/v1/functions/a", "status=201", "bytes=2", "request_id=client-id-1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("access log lacks %s: %s", want, logs.String())
		}
	}
	// A missing or unprintable id is replaced.
	req = httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Request-Id", "bad\x01id")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get("X-Request-Id"); got == "" || got == "bad\x01id" || seen != got {
		t.Errorf("generated id %q, handler saw %q", got, seen)
	}
}
