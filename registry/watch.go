package registry

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

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
	// stream of events (zero for EventReady).
	Revision uint64
}

// Watcher delivers the active functions and then every change to them, in
// the order they were made. Create one with Registry.Watch.
type Watcher struct {
	kw       jetstream.KeyWatcher
	updates  chan Event
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	log      *slog.Logger
}

// Watch starts watching the active functions. The Watcher first sends an
// EventPut for every active function, then one EventReady, then an EventPut
// or EventDelete for every deploy, rollback and delete, in order. Updates is
// closed when ctx ends or Stop is called. Read Updates promptly: a slow
// reader holds back delivery (nothing is dropped).
func (r *Registry) Watch(ctx context.Context) (*Watcher, error) {
	kw, err := r.kv.Watch(ctx, allActive)
	if err != nil {
		return nil, fmt.Errorf("watch functions: %w", err)
	}
	w := &Watcher{
		kw:      kw,
		updates: make(chan Event, 64),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		log:     r.log,
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
	defer stopWatcher(w.kw)

	// Functions put during the initial values: a delete of one of them
	// before EventReady is a real change, not a stale marker.
	initial, seen := true, make(map[string]bool)
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case entry, ok := <-w.kw.Updates():
			if !ok {
				return
			}
			e = entry
		}
		ev, ok := w.event(e, initial && !seen[nameOf(e)])
		switch {
		case e == nil:
			initial, seen = false, nil
		case initial && ev.Type == EventPut:
			seen[ev.Name] = true
		}
		if !ok {
			continue
		}
		select {
		case w.updates <- ev:
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		}
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
		w.log.Warn("registry: watch: ignoring unexpected key", "key", e.Key())
		return Event{}, false
	}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		p, err := decodePointer(e)
		if err != nil {
			w.log.Warn("registry: watch: ignoring undecodable active record", "key", e.Key(), "err", err)
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
