package gateway

import (
	"context"

	"github.com/nylon-functions/nylon/protocol"
)

// logJob is one logging phase call, its invocation already encoded so that
// nothing of the request is shared with the worker.
type logJob struct {
	t    *target
	meta callMeta
	data []byte
}

// newLogPool runs the logging phase off the request path; a full queue
// drops the call (the caller counts it).
func newLogPool(g *Gateway, workers, queue int) *workQueue[logJob] {
	return newWorkQueue(workers, queue, func(ctx context.Context, j logJob) {
		// Failures are logged and dead-lettered by invoke; logging's
		// on_error cannot fail a request that is already answered.
		_, _ = g.invoke(ctx, j.t, protocol.PhaseLogging, j.data, &j.meta)
	})
}
