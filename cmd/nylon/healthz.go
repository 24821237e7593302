package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// healthz is the admin role's stand-in until the platform's admin API is
// part of the build: it serves GET /healthz on --admin with the NATS status,
// 200 while connected and 503 otherwise.
type healthz struct {
	addr string
	conn *natsconn.Conn
	log  *slog.Logger
	out  io.Writer

	srv  *http.Server
	done chan struct{}

	mu  sync.Mutex
	err error
}

func newHealthz(d serveDeps) (component, error) {
	return &healthz{addr: d.Config.Admin, conn: d.NATS, log: d.Log, out: d.Stdout, done: make(chan struct{})}, nil
}

// healthzBody is the JSON of GET /healthz.
type healthzBody struct {
	Status string          `json:"status"` // "ok" or "unavailable"
	NATS   natsconn.Health `json:"nats"`
}

func (h *healthz) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	body := healthzBody{Status: "ok", NATS: h.conn.Health()}
	code := http.StatusOK
	if !body.NATS.Connected {
		body.Status, code = "unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func (h *healthz) Start(context.Context) error {
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", h.addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", h)
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			h.mu.Lock()
			h.err = fmt.Errorf("serve %s: %w", ln.Addr(), err)
			h.mu.Unlock()
		}
	}()
	fmt.Fprintf(h.out, "admin: http://%s (GET /healthz; the admin API is not in this build yet)\n", ln.Addr())
	return nil
}

func (h *healthz) Drain(ctx context.Context) error {
	if err := h.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}

// Done is closed when the server stops; before Drain that is a failure.
func (h *healthz) Done() <-chan struct{} { return h.done }

// Err says why the server stopped by itself.
func (h *healthz) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}
