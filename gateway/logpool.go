package gateway

import (
	"context"
	"errors"

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
		// logging's on_error cannot fail a request that is already
		// answered: a failure gets its one line here (invoke logs the
		// attempts at DEBUG only, and dead-letters it).
		_, err := g.invoke(ctx, j.t, protocol.PhaseLogging, j.data, &j.meta)
		if err == nil || errors.Is(err, errShed) || errors.Is(err, errUnserved) || errors.Is(err, context.Canceled) {
			return
		}
		g.logFailure(ctx, failure{msg: msgLoggingFailed, meta: &j.meta, plugin: j.t.name, err: err})
	})
}
