package gateway

import "sync"

// maxPooledBuf is the largest encoding buffer kept for reuse: a pool never
// frees what it holds, so one rare large body must not pin its memory.
const maxPooledBuf = 4 << 20

// wirePool recycles the buffers phase calls encode invocations and
// envelopes into, and decode replies into. nats.go copies a message into
// its write buffer before a publish or request returns, so a buffer is free
// again as soon as its call returns.
type wirePool struct{ p sync.Pool }

func (w *wirePool) get() *[]byte {
	if bp, ok := w.p.Get().(*[]byte); ok {
		return bp
	}
	return new([]byte)
}

// put recycles bp; the caller must not use *bp afterwards.
func (w *wirePool) put(bp *[]byte) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	*bp = (*bp)[:0]
	w.p.Put(bp)
}
