package natsconn

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestIsStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("store 141 bytes: %w", jetstream.ErrAsyncPublishTimeout), true},
		{nats.ErrTimeout, true},
		{jetstream.ErrNoStreamResponse, true},
		{fmt.Errorf("nats: %w", &jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}), true},
		{jetstream.ErrKeyExists, false}, // a conflict is an answer
		{fmt.Errorf("nats: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}), false},
		{jetstream.ErrKeyNotFound, false},
		{jetstream.ErrObjectNotFound, false},
		{context.Canceled, false}, // the caller gave up
		{errors.New("invalid key"), false},
	} {
		if got := isStoreFailure(tc.err); got != tc.want {
			t.Errorf("isStoreFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A failed write is remembered per stream until a write to the same stream
// is acknowledged; answers such as conflicts change nothing.
func TestStoreWatchObserve(t *testing.T) {
	var w storeWatch
	w.observe("KV_a", context.DeadlineExceeded)
	w.observe("KV_b", nil)
	w.observe("KV_a", jetstream.ErrKeyExists)
	if got := w.writeErrors(time.Now()); len(got) != 1 || got[0].Stream != "KV_a" || got[0].Error != context.DeadlineExceeded.Error() || got[0].At.IsZero() {
		t.Fatalf("writeErrors = %+v, want KV_a's timeout", got)
	}
	w.observe("KV_a", nil)
	if got := w.writeErrors(time.Now()); len(got) != 0 {
		t.Fatalf("writeErrors after an acknowledged write = %+v, want none", got)
	}
	// Without a newer write, a failure is reported for writeErrorTTL.
	w.observe("OBJ_m", context.DeadlineExceeded)
	if got := w.writeErrors(time.Now().Add(writeErrorTTL - time.Minute)); len(got) != 1 {
		t.Fatalf("writeErrors before the TTL = %+v, want OBJ_m's timeout", got)
	}
	if got := w.writeErrors(time.Now().Add(writeErrorTTL + time.Minute)); len(got) != 0 {
		t.Fatalf("writeErrors after the TTL = %+v, want none", got)
	}
}
