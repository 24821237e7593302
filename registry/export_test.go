package registry

import (
	"context"
	"time"
)

// EndKVWatch ends w's current KV watch the way nats.go does when it gives
// up recreating the watch's consumer.
func EndKVWatch(w *Watcher) { _ = w.current().Stop() }

// HoldWatchReopen makes r's watchers wait for release (instead of their
// backoff) before they reopen an ended KV watch.
func HoldWatchReopen(r *Registry, release <-chan struct{}) {
	r.watchWait = func(ctx context.Context, stop <-chan struct{}, _ time.Duration) bool {
		select {
		case <-release:
			return true
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		}
	}
}

// CheckWatchesEvery sets how often r's watchers check they are not behind
// the bucket.
func CheckWatchesEvery(r *Registry, d time.Duration) { r.watchCheck = d }

// GiveUpStalledReadsAfter sets how long r waits for the next bytes of a
// module read.
func GiveUpStalledReadsAfter(r *Registry, d time.Duration) { r.objectStall = d }

// OnStep makes r call fn at named points: in Deploy "deploy:activate"
// (before the active pointer is written), in Rollback "rollback:write"
// (after the checks, before the pointer is moved), and in a module's
// collection "collect:read" (before its bytes are read for a restore).
func OnStep(r *Registry, fn func(point string)) { r.onStep = fn }
