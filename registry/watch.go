package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EventType says what an Event reports.
type EventType uint8

const (
	// EventPut: a function was deployed or rolled back; Record is now active.
	EventPut EventType = iota + 1
	// EventDelete: the function was deleted; only Name is set.
	EventDelete
	// EventReady: every function active when the watch started has been
	// delivered; later events are changes. Sent exactly once.
	EventReady
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventReady:
		return "ready"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one change of the set of active functions.
type Event struct {
	Type EventType
	// Name is the function's name (empty for EventReady).
	Name string
	// Record is the now active record, Active set (EventPut only).
	Record Record
	// Revision is the KV revision of the change; it increases along the
	// stream of events (zero for EventReady). The one exception: a delete
	// the Watcher finds after reopening its KV watch (see Watcher) whose
	// marker is gone carries the latest revision sent before it.
	Revision uint64
}

// Watcher delivers the active functions and then every change to them, in
// the order they were made. Create one with Registry.Watch.
//
// It outlives the KV watch it reads. The watch is an ephemeral consumer on
// one NATS server: when that server goes away, nats.go notices only after
// two missed heartbeats (10 to 20 s) and then recreates it, and on errors
// it does not expect it gives up and ends the watch. So every two seconds
// the Watcher asks the bucket for its latest active-pointer revision; a
// watch that was behind it at one check and received nothing by the next,
// or that ends, is replaced by a new one (at once, then with backoff while
// that fails), whose initial values the Watcher turns into the changes the
// reader missed. The reader sees one uninterrupted stream of events and
// one EventReady.
type Watcher struct {
	reg      *Registry
	kwMu     sync.Mutex // kw is replaced by run, read by tests
	kw       jetstream.KeyWatcher
	updates  chan Event
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	// delivered is the state the reader has been sent: each active
	// function's revision. A restarted watch is compared with it.
	delivered map[string]uint64
	// lastRev is the revision of the latest event sent.
	lastRev uint64
	// seenRev is the revision of the latest KV entry received, event or
	// not (a skipped marker, an undecodable record).
	seenRev uint64
}

// Watch starts watching the active functions. The Watcher first sends an
// EventPut for every active function, then one EventReady, then an EventPut
// or EventDelete for every deploy, rollback and delete, in order. Updates is
// closed when ctx ends or Stop is called, and only then. Read Updates
// promptly: a slow reader holds back delivery (nothing is dropped).
func (r *Registry) Watch(ctx context.Context) (*Watcher, error) {
	kw, err := r.kv.Watch(ctx, allActive)
	if err != nil {
		return nil, fmt.Errorf("watch functions: %w", err)
	}
	w := &Watcher{
		reg:       r,
		kw:        kw,
		updates:   make(chan Event, 64),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		delivered: map[string]uint64{},
	}
	go w.run(ctx)
	return w, nil
}

// Updates returns the channel of events, closed when the watcher stops.
func (w *Watcher) Updates() <-chan Event { return w.updates }

// Stop ends the watch and closes Updates. It is safe to call more than once
// and from any goroutine; it returns once the watcher has stopped.
func (w *Watcher) Stop() error {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
	return nil
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	defer close(w.updates)
	resync := false
	for {
		ok := w.follow(ctx, w.current(), resync)
		stopWatcher(w.current())
		if !ok || !w.reopen(ctx) {
			return
		}
		resync = true
	}
}

func (w *Watcher) current() jetstream.KeyWatcher {
	w.kwMu.Lock()
	defer w.kwMu.Unlock()
	return w.kw
}

// follow sends the events of the current KV watch until it ends. It
// reports false when the Watcher is done (stopped, ctx ended) and true when
// the KV watch ended underneath it. With resync, the watch's initial values
// are a fresh copy of the state: only their difference from what was
// delivered is sent, and no second EventReady.
func (w *Watcher) follow(ctx context.Context, kw jetstream.KeyWatcher, resync bool) bool {
	// Functions put during the initial values: a delete of one of them
	// before the end of the initial values is a real change, not a stale
	// marker.
	initial, seen := true, make(map[string]bool)
	var fresh []Event // resync: the initial state, in revision order
	check := time.NewTicker(w.reg.watchCheck)
	defer check.Stop()
	// A watch is stuck when the bucket had a revision it has not
	// delivered at the last check and nothing arrived since; one that is
	// merely slow (a reader holding back delivery) keeps receiving.
	var behind uint64 // the bucket's revision at the last check, if ahead
	received := false
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return false
		case <-w.stop:
			return false
		case <-check.C:
			if initial {
				continue
			}
			if behind > w.seenRev && !received {
				w.reg.log.Warn("registry: watch is stuck behind its bucket; reopening", "watch_revision", w.seenRev, "bucket_revision", behind)
				return true
			}
			behind, received = 0, false
			if rev := w.bucketRevision(ctx); rev > w.seenRev {
				behind = rev
			}
			continue
		case entry, ok := <-kw.Updates():
			if !ok {
				if ctx.Err() != nil {
					return false
				}
				w.reg.log.Warn("registry: watch ended; reopening")
				return true
			}
			e = entry
		}
		received = true
		if e != nil {
			w.seenRev = max(w.seenRev, e.Revision())
		}
		// A restarted watch keeps the delete markers of its initial values:
		// they are deletes the reader may have missed.
		ev, ok := w.event(e, initial && !resync && !seen[nameOf(e)])
		switch {
		case e == nil:
			initial, seen = false, nil
		case initial && ev.Type == EventPut:
			seen[ev.Name] = true
		}
		if !ok {
			continue
		}
		if resync && initial {
			fresh = append(fresh, ev)
			continue
		}
		if resync && ev.Type == EventReady {
			for _, missed := range w.missed(fresh) {
				if !w.send(ctx, missed) {
					return false
				}
			}
			resync, fresh = false, nil
			continue
		}
		if !w.send(ctx, ev) {
			return false
		}
	}
}

// bucketRevision returns the bucket's latest active-pointer revision, or 0
// when there is none or the server cannot say (the next check asks again).
func (w *Watcher) bucketRevision(ctx context.Context) uint64 {
	ctx, cancel := context.WithTimeout(ctx, w.reg.watchCheck)
	defer cancel()
	m, err := w.reg.kvStream.GetLastMsgForSubject(ctx, "$KV."+w.reg.kv.Bucket()+"."+allActive)
	if err != nil {
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			w.reg.log.Debug("registry: watch check", "err", err)
		}
		return 0
	}
	return m.Sequence
}

// missed returns the events that turn what was delivered into the state
// fresh describes (the initial values of a restarted watch, delete markers
// included, in revision order): the latest put or delete of each function
// that differs from what the reader has, in revision order, then a delete
// for each delivered function that has no entry left at all.
func (w *Watcher) missed(fresh []Event) []Event {
	latest := make(map[string]uint64, len(fresh))
	for _, ev := range fresh {
		latest[ev.Name] = ev.Revision
	}
	var out []Event
	for _, ev := range fresh {
		rev, known := w.delivered[ev.Name]
		switch {
		case latest[ev.Name] != ev.Revision: // superseded within fresh
		case ev.Type == EventPut && (!known || rev != ev.Revision):
			out = append(out, ev)
		case ev.Type == EventDelete && known:
			out = append(out, ev)
		}
	}
	var gone []string
	for name := range w.delivered {
		if _, ok := latest[name]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		// No marker to take a revision from: the latest one sent keeps
		// Revision from going back.
		out = append(out, Event{Type: EventDelete, Name: name, Revision: max(w.lastRev, lastRevision(out))})
	}
	return out
}

func lastRevision(evs []Event) uint64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Revision
}

// send delivers ev and records it in the delivered state.
func (w *Watcher) send(ctx context.Context, ev Event) bool {
	select {
	case w.updates <- ev:
	case <-ctx.Done():
		return false
	case <-w.stop:
		return false
	}
	switch ev.Type {
	case EventPut:
		w.delivered[ev.Name] = ev.Revision
	case EventDelete:
		delete(w.delivered, ev.Name)
	}
	w.lastRev = max(w.lastRev, ev.Revision)
	return true
}

// reopen opens a new KV watch after the previous one ended or fell behind:
// at once, then with backoff (1 s doubling to 30 s) while it fails, until
// it succeeds or the Watcher is done.
func (w *Watcher) reopen(ctx context.Context) bool {
	var delay time.Duration
	for failures := 0; ; failures++ {
		if !w.reg.watchWait(ctx, w.stop, delay) {
			return false
		}
		kw, err := w.reg.kv.Watch(ctx, allActive)
		if err == nil {
			w.kwMu.Lock()
			w.kw = kw
			w.kwMu.Unlock()
			return true
		}
		delay = min(time.Second<<min(failures, 5), 30*time.Second)
		level := slog.LevelError
		if errors.Is(err, nats.ErrConnectionDraining) || errors.Is(err, nats.ErrConnectionClosed) {
			// The process is shutting down: its connection drains
			// before the watcher is stopped. Nothing for an operator.
			level = slog.LevelDebug
		}
		w.reg.log.Log(ctx, level, "registry: reopen watch", "err", err, "retry_in", delay)
	}
}

// waitOrStop waits d, or until ctx ends or stop is closed (false).
func waitOrStop(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

func nameOf(e jetstream.KeyValueEntry) string {
	if e == nil {
		return ""
	}
	name, _ := nameOfActiveKey(e.Key())
	return name
}

// event converts a KV entry (nil = end of the initial values) into an Event.
// It reports false for entries that are not events: a delete marker among
// the initial values (a function deleted before the watch began is not part
// of the current state) and records nobody can read (logged).
func (w *Watcher) event(e jetstream.KeyValueEntry, initial bool) (Event, bool) {
	if e == nil {
		return Event{Type: EventReady}, true
	}
	name, ok := nameOfActiveKey(e.Key())
	if !ok {
		w.reg.log.Warn("registry: watch: ignoring unexpected key", "key", e.Key())
		return Event{}, false
	}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		p, err := decodePointer(e)
		if err != nil {
			w.reg.log.Warn("registry: watch: ignoring undecodable active record", "key", e.Key(), "err", err)
			return Event{}, false
		}
		return Event{Type: EventPut, Name: name, Record: p.Record, Revision: e.Revision()}, true
	default: // KeyValueDelete, KeyValuePurge
		if initial {
			return Event{}, false
		}
		return Event{Type: EventDelete, Name: name, Revision: e.Revision()}, true
	}
}
