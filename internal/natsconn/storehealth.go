package natsconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// How often, and how long at most, StoreHealth asks the embedded server's
// own health check. The check reads the store directory and every stream's
// state (about 0.1 ms for a handful of streams); /healthz is probed often,
// so one answer serves every probe for storeCheckTTL, and a check stuck
// behind JetStream's locks cannot hold a probe longer than storeCheckWait.
const (
	storeCheckTTL  = time.Second
	storeCheckWait = 300 * time.Millisecond
)

// writeErrorTTL is how long a failed write is reported without a newer
// write to its stream. Registry writes are rare (deploys), so without an
// end one timeout during a cluster's leader election would leave /healthz
// degraded for days; a stream that stays stopped fails every later write,
// and each deploy attempt reports it again. (The embedded server's own
// check does not age.)
const writeErrorTTL = 10 * time.Minute

// Store health statuses.
const (
	StoreOK      = "ok"
	StoreFailing = "failing"
	StoreUnknown = "unknown" // the embedded server's check did not answer in time
)

// StoreHealth is whether JetStream stores what this process writes.
//
// nats-server (2.14 and later) stops a file-backed stream at its first
// write error (too many open files, disk full, an I/O error): the stream
// refuses every later write until the server restarts, while reads go on
// and stream info looks healthy. Two signals show it:
//   - Errors: the embedded server's own health check (server.Healthz),
//     which names each stream stopped by a write error and JetStream being
//     off. Embedded server only; an external server reports the same on its
//     monitoring port (/healthz).
//   - WriteErrors: the last key-value or object store write through
//     Conn.JetStream() per stream, when JetStream did not acknowledge it (a
//     timeout, no responders, a 5xx API error); a later acknowledged write
//     to that stream clears it. Conflicts, missing keys and cancelled
//     requests are answers, not failures.
type StoreHealth struct {
	Status      string       `json:"status"` // StoreOK, StoreFailing or StoreUnknown
	Errors      []string     `json:"errors,omitempty"`
	WriteErrors []WriteError `json:"write_errors,omitempty"`
}

// WriteError is the last failed write to one stream.
type WriteError struct {
	Stream string    `json:"stream"`
	Error  string    `json:"error"`
	At     time.Time `json:"at"`
}

// StoreHealth reports whether JetStream stores this process's writes; see
// the type. It answers from a cache at most storeCheckTTL old and waits at
// most storeCheckWait (or until ctx ends) for a fresh check of the embedded
// server.
func (c *Conn) StoreHealth(ctx context.Context) StoreHealth {
	h := StoreHealth{Status: StoreOK}
	var serverErrs []string
	timedOut := false
	if c.Server != nil {
		var answered bool
		serverErrs, answered = c.store.serverErrors(ctx, c.Server)
		h.Errors = serverErrs
		if !answered {
			// serverErrs is then the previous answer, still worth showing.
			h.Errors = append(slices.Clone(serverErrs), fmt.Sprintf("the embedded server's health check did not answer within %v", storeCheckWait))
			timedOut = true
		}
	}
	h.WriteErrors = c.store.writeErrors(time.Now())
	switch {
	case len(serverErrs) > 0 || len(h.WriteErrors) > 0:
		h.Status = StoreFailing
	case timedOut:
		h.Status = StoreUnknown
	}
	return h
}

// storeWatch holds what StoreHealth reports: the cached result of the
// embedded server's check and the failed writes seen by the JetStream
// wrapper.
type storeWatch struct {
	mu      sync.Mutex
	errs    []string      // the last check's errors; never modified, only replaced
	checked time.Time     // when errs was taken; zero before the first check
	running chan struct{} // closed when the running check ends; nil when none runs
	writes  map[string]WriteError
}

// serverErrors returns the embedded server's health errors, checking again
// when the cached answer is older than storeCheckTTL. answered is false
// when the check is still running after storeCheckWait; errs is then the
// previous answer.
func (w *storeWatch) serverErrors(ctx context.Context, s *server.Server) (errs []string, answered bool) {
	w.mu.Lock()
	if !w.checked.IsZero() && time.Since(w.checked) < storeCheckTTL {
		errs := w.errs
		w.mu.Unlock()
		return errs, true
	}
	if w.running == nil {
		done := make(chan struct{})
		w.running = done
		// The check runs on its own so that a probe waits for it no longer
		// than storeCheckWait; one check serves every probe waiting meanwhile.
		go func() {
			errs := healthzErrors(s)
			w.mu.Lock()
			w.errs, w.checked, w.running = errs, time.Now(), nil
			w.mu.Unlock()
			close(done)
		}()
	}
	done := w.running
	w.mu.Unlock()

	t := time.NewTimer(storeCheckWait)
	defer t.Stop()
	select {
	case <-done:
		answered = true
	case <-t.C:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs, answered
}

// healthzErrors runs nats-server's own health check (what its monitoring
// port answers on /healthz), with details so that every failing stream is
// named, not only the first.
func healthzErrors(s *server.Server) []string {
	hs := s.Healthz(&server.HealthzOptions{Details: true})
	var errs []string
	if hs.Error != "" {
		errs = append(errs, hs.Error)
	}
	for _, e := range hs.Errors {
		errs = append(errs, e.Error)
	}
	return errs
}

// observe records the outcome of a write to stream.
func (w *storeWatch) observe(stream string, err error) {
	if err != nil && !isStoreFailure(err) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		delete(w.writes, stream)
		return
	}
	if w.writes == nil {
		w.writes = make(map[string]WriteError)
	}
	w.writes[stream] = WriteError{Stream: stream, Error: err.Error(), At: time.Now().UTC()}
}

// writeErrors returns the failed writes not older than writeErrorTTL at
// now, and forgets the older ones.
func (w *storeWatch) writeErrors(now time.Time) []WriteError {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []WriteError
	for stream, e := range w.writes {
		if now.Sub(e.At) > writeErrorTTL {
			delete(w.writes, stream)
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b WriteError) int { return strings.Compare(a.Stream, b.Stream) })
	return out
}

// isStoreFailure reports whether err means JetStream did not store a write:
// no acknowledgement in time (a stream stopped by a write error sends
// none), nobody answering, or a server-side API error. Anything else is an
// answer about the request (a conflict, a missing key, a bad name), the
// caller giving up, or the connection being down, which the connection's
// own health reports.
func isStoreFailure(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500
	}
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}
