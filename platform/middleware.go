package platform

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
)

// requestIDKey is the context key of the admin request id.
type requestIDKey struct{}

// RequestID returns the id the admin API gave the request in ctx (the
// X-Request-Id response header), or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// headerRequestID carries the admin request id both ways.
const headerRequestID = "X-Request-Id"

// withRequestID gives every request an id: the client's X-Request-Id when it
// is short printable ASCII, else a new UUIDv7. It is echoed in the response
// header, the access log and every problem.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(headerRequestID)
		if !printableID(id) {
			if u, err := uuid.NewV7(); err == nil {
				id = u.String()
			} else {
				id = uuid.NewString()
			}
		}
		w.Header().Set(headerRequestID, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func printableID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// statusRecorder remembers what a handler answered, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// accessLog logs one record per request at Info (Warn for 5xx) with the
// method, path, status, size, duration, remote address and request id.
func accessLog(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w}
			defer func() {
				level := slog.LevelInfo
				switch {
				case rec.status >= 500:
					level = slog.LevelWarn
				case rec.status < 400 && (r.URL.Path == "/healthz" || r.URL.Path == "/metrics"):
					level = slog.LevelDebug // probes and scrapes every few seconds
				}
				log.LogAttrs(r.Context(), level, "admin: request",
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", rec.status),
					slog.Int64("bytes", rec.bytes),
					slog.Duration("duration", time.Since(start)),
					slog.String("remote", r.RemoteAddr),
					slog.String("request_id", RequestID(r.Context())))
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// recoverer turns a panic in a handler into a 500 problem and an Error log
// with the stack, so one bad request never takes the admin API down.
// http.ErrAbortHandler is re-panicked: it is net/http's way to abort.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("admin: handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v),
					"request_id", RequestID(r.Context()), "stack", string(debug.Stack()))
				writeProblem(w, r, problem(ProblemInternal, http.StatusInternalServerError, "internal error"))
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// bearerAuth requires "Authorization: Bearer <token>". The comparison is in
// constant time over SHA-256 digests, so neither the token's bytes nor its
// length leak through timing. An empty token disables the check (dev only:
// NewAdmin refuses that anywhere else).
func bearerAuth(token string) func(http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return func(next http.Handler) http.Handler {
		if token == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Header.Get("Authorization")
			got, ok := bearer(h)
			if !ok {
				detail := "missing bearer token: send Authorization: Bearer <token>"
				if scheme, _, _ := strings.Cut(strings.TrimSpace(h), " "); scheme != "" && !strings.EqualFold(scheme, "Bearer") {
					detail = fmt.Sprintf("Authorization scheme %q is not accepted: send Authorization: Bearer <token>", truncateScheme(scheme))
				}
				writeProblem(w, r, problem(ProblemUnauthorized, http.StatusUnauthorized, detail))
				return
			}
			sum := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				writeProblem(w, r, problem(ProblemUnauthorized, http.StatusUnauthorized, "invalid bearer token"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// truncateScheme keeps an echoed scheme short and printable: it is
// whatever the client sent.
func truncateScheme(s string) string {
	if len(s) > 20 {
		s = s[:20]
	}
	if !printableID(s) {
		return "?"
	}
	return s
}

// bearer extracts the token of an Authorization header ("Bearer" is
// case-insensitive, RFC 9110 section 11.1).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
