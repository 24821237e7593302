package gateway

import (
	"errors"
	"io"

	"github.com/nylon-functions/nylon/protocol"
)

// bodyFilter runs the origin's body through response_body_filter: chunks of
// up to chunk bytes, in order, each handed to every body filter in chain
// order with chunk_index and last_chunk, and replaced by a filter's op 103.
// There is always at least one call: an empty body is one empty last chunk,
// so a filter can still produce a body (or append to the end of one).
//
// Headers are written before the first chunk is read, so header and status
// ops of this phase are ignored; and a failure that does not continue can
// only abort the response (the client sees a truncated body).
type bodyFilter struct {
	ex    *exchange
	src   io.ReadCloser
	chunk int
	resp  protocol.HTTPResponse

	buf     []byte
	carry   byte
	carried bool
	out     []byte
	index   uint32
	done    bool
}

func (f *bodyFilter) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		if f.done {
			return 0, io.EOF
		}
		if err := f.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

func (f *bodyFilter) Close() error { return f.src.Close() }

// next reads one chunk, learns whether it is the last, and filters it.
func (f *bodyFilter) next() error {
	if f.buf == nil {
		f.buf = make([]byte, f.chunk)
	}
	n := 0
	if f.carried {
		f.buf[0] = f.carry
		f.carried = false
		n = 1
	}
	k, err := readChunk(f.src, f.buf[n:])
	n += k
	last := false
	switch {
	case errors.Is(err, io.EOF):
		last = true
	case err != nil:
		// io.ErrUnexpectedEOF included: the upstream died before the
		// end of its body (the transport's error for a connection closed
		// short of Content-Length or of the last chunk). Taken for the
		// end, it would send the bytes so far as a whole response.
		return err
	default:
		// A full chunk: peek one byte to tell whether it is the last.
		var one [1]byte
		for {
			k, perr := f.src.Read(one[:])
			if k > 0 {
				f.carry, f.carried = one[0], true
				break
			}
			if errors.Is(perr, io.EOF) {
				last = true
				break
			}
			if perr != nil {
				return perr
			}
		}
	}
	out := f.buf[:n]
	ex := f.ex
	ctx := ex.ctx
	for _, h := range ex.rt.bodyFilters {
		if !h.t.serves(protocol.PhaseResponseBodyFilter) {
			continue
		}
		r := f.resp
		r.Body, r.ChunkIndex, r.LastChunk = out, f.index, last
		ex.inv.Response = &r
		rep, err := ex.call(ctx, h, protocol.PhaseResponseBodyFilter)
		ex.inv.Response = nil
		if err != nil {
			if ex.proceed(err, h, protocol.PhaseResponseBodyFilter) {
				continue
			}
			ex.upErr = err.Error()
			return err
		}
		var b responseBody
		for i := range rep.ops {
			b.apply(&rep.ops[i])
		}
		if b.set {
			out = b.body
		}
	}
	f.out = out
	f.index++
	f.done = last
	return nil
}

// readChunk fills buf from r as io.ReadFull does, but returns r's error
// as it is: io.EOF when the body ended (buf full or not), and
// io.ErrUnexpectedEOF only when r said so. io.ReadFull turns a short read
// ending in io.EOF into io.ErrUnexpectedEOF, so its caller cannot tell
// the end of a body from an upstream that failed in the middle of it.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
