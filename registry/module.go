package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Module returns the module bytes of rec after checking that they hash to
// rec.SHA256 and have rec.Size; otherwise the error wraps ErrCorruptModule
// and the bytes must not be loaded. A missing object is ErrNotFound.
func (r *Registry) Module(ctx context.Context, rec Record) ([]byte, error) {
	what := fmt.Sprintf("function[%s] version %d: module[%s]", rec.Name, rec.Version, truncate(rec.SHA256, 64))
	if !validSHA256(rec.SHA256) {
		return nil, fmt.Errorf("%s: %w: not a lowercase hex sha256", what, ErrCorruptModule)
	}
	data, err := r.readObject(ctx, rec.SHA256, rec.Size, nil)
	switch {
	case errors.Is(err, errObjectTooLarge):
		return nil, fmt.Errorf("%s: %w: %w", what, ErrCorruptModule, err)
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, fmt.Errorf("%s: %w: %w", what, ErrNotFound, err)
	case errors.Is(err, jetstream.ErrDigestMismatch):
		return nil, fmt.Errorf("%s: %w: %w", what, ErrCorruptModule, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if int64(len(data)) != rec.Size {
		return nil, fmt.Errorf("%s: %w: %d bytes stored, record says %d", what, ErrCorruptModule, len(data), rec.Size)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != rec.SHA256 {
		return nil, fmt.Errorf("%s: %w: stored bytes hash to %s", what, ErrCorruptModule, got)
	}
	return data, nil
}

// errObjectTooLarge is an object with more bytes than its record says.
var errObjectTooLarge = errors.New("more bytes stored than the record says")

// errObjectGone is a read abandoned because the object was deleted or
// stored anew while it was read (see readObject's gone).
var errObjectGone = errors.New("deleted or replaced while being read")

// goneCheckInterval is how often a read with a gone check makes it.
const goneCheckInterval = 100 * time.Millisecond

// readObject reads object name, which should hold size bytes: it stops
// with errObjectTooLarge at the first byte past them, so a tampered object
// cannot make the reader buffer more than the record allows. It gives up
// when no bytes have come for
// objectStall (or after objectRead in all), and returns as soon as ctx
// ends. nats.go's object reader notices an ended context only when a chunk
// arrives or its deadline passes, and the chunks come through an ordered
// consumer that can be lost with a server, or stall, so that no chunk ever
// arrives. A read given up on is abandoned, not waited for: its context is
// cancelled, which ends its consumer, and its goroutine ends at the read's
// deadline.
//
// When gone is not nil it is asked every goneCheckInterval whether the
// object is still the one being read; once it says no, the read is
// abandoned with errObjectGone. A delete purges the chunks a read is
// waiting for, and nats.go would wait for them until its deadline.
func (r *Registry) readObject(ctx context.Context, name string, size int64, gone func(context.Context) bool) ([]byte, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.objectRead)
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	var progress atomic.Int64 // bytes read so far
	go func() {
		defer cancel()
		data, err := readAllObject(rctx, r.obs, name, size, &progress)
		done <- result{data, err}
	}()
	every := r.objectStall / 4
	if gone != nil {
		every = min(every, goneCheckInterval)
	}
	check := time.NewTicker(every)
	defer check.Stop()
	seen, seenAt := int64(0), time.Now()
	for {
		select {
		case res := <-done:
			return res.data, res.err
		case <-ctx.Done():
			cancel() // ends the read's consumer; its Read ends at its deadline
			return nil, ctx.Err()
		case now := <-check.C:
			if gone != nil && gone(ctx) {
				cancel()
				return nil, errObjectGone
			}
			if n := progress.Load(); n != seen {
				seen, seenAt = n, now
			} else if now.Sub(seenAt) >= r.objectStall {
				cancel()
				return nil, fmt.Errorf("read stalled: no bytes for %v after %d", r.objectStall, n)
			}
		}
	}
}

// readAllObject reads object name whole, at most size bytes, counting the
// bytes in progress.
func readAllObject(ctx context.Context, obs jetstream.ObjectStore, name string, size int64, progress *atomic.Int64) ([]byte, error) {
	res, err := obs.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	buf := make([]byte, 0, max(size, 0)+1) // +1: room to see one byte too many
	for {
		if len(buf) == cap(buf) {
			return nil, fmt.Errorf("%w (%d)", errObjectTooLarge, size)
		}
		n, err := res.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		progress.Add(int64(n))
		switch {
		case errors.Is(err, io.EOF):
			if int64(len(buf)) > size {
				return nil, fmt.Errorf("%w (%d)", errObjectTooLarge, size)
			}
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// ensureModule makes sure the object named sha holds module, uploading it
// unless an object with that name, size and Object Store digest is present.
// The digest in the object's metadata is the uploader's claim; Module checks
// the real bytes when they are loaded.
func (r *Registry) ensureModule(ctx context.Context, sha string, module []byte) error {
	info, err := r.obs.GetInfo(ctx, sha)
	switch {
	case err == nil && info.Size == uint64(len(module)) && info.Digest == objectDigest(module):
		return nil
	case err != nil && !errors.Is(err, jetstream.ErrObjectNotFound):
		return fmt.Errorf("module[%s]: %w", sha, err)
	}
	if _, err := r.obs.PutBytes(ctx, sha, module); err != nil {
		return fmt.Errorf("module[%s]: store %d bytes: %w", sha, len(module), err)
	}
	return nil
}

// objectDigest renders a digest the way the Object Store records it.
func objectDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:])
}

func validSHA256(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
