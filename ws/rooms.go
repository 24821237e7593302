package ws

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/nylon-functions/nylon/protocol"
)

// Headers of a room message. The data is the payload as the clients get it.
const (
	// HeaderWSType is "text" or "binary": the frame type members receive.
	HeaderWSType = "Nylon-WS-Type"
	// HeaderExclude carries the id of a connection that must not receive the
	// message (a broadcast with protocol.BroadcastExcludeSender).
	HeaderExclude = "Nylon-Exclude"
)

// rooms tracks this edge's local members per room. The edge is subscribed
// to a room's subject exactly while the room has a local member, so one
// publish reaches every edge with members once, and each edge hands it to
// its own members, the publisher's included.
type rooms struct {
	e  *Edge
	mu sync.Mutex // guards m and membership changes; never held during delivery
	m  map[string]*room
}

type room struct {
	name string
	sub  *nats.Subscription
	// members is replaced, never mutated, so the subscription callback
	// iterates a snapshot without taking rooms.mu.
	members atomic.Pointer[[]*conn]
}

func newRooms(e *Edge) *rooms {
	return &rooms{e: e, m: make(map[string]*room)}
}

// join adds c to room, subscribing to the room's subject when c is its
// first local member. Joining twice is a no-op.
func (rs *rooms) join(c *conn, name string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.m[name]
	if r == nil {
		r = &room{name: name}
		r.members.Store(&[]*conn{})
		// The callback reads the member list through r, so it can be
		// installed before r is in the map.
		sub, err := rs.e.nc.Subscribe(protocol.RoomSubject(rs.e.cfg.SubjectPrefix, name), r.deliver)
		if err != nil {
			return fmt.Errorf("join room[%s]: subscribe: %w", name, err)
		}
		r.sub = sub
		rs.m[name] = r
		rs.e.m.rooms.Inc()
		rs.e.log.Debug("ws room subscribed", "room", name)
	}
	old := *r.members.Load()
	if slices.Contains(old, c) {
		return nil
	}
	next := make([]*conn, len(old), len(old)+1)
	copy(next, old)
	next = append(next, c)
	r.members.Store(&next)
	return nil
}

// leave removes c from room and unsubscribes when it was the last local
// member. Leaving a room one is not in is a no-op.
func (rs *rooms) leave(c *conn, name string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.m[name]
	if r == nil {
		return nil
	}
	old := *r.members.Load()
	i := slices.Index(old, c)
	if i < 0 {
		return nil
	}
	next := slices.Delete(slices.Clone(old), i, i+1)
	r.members.Store(&next)
	if len(next) > 0 {
		return nil
	}
	delete(rs.m, name)
	rs.e.m.rooms.Dec()
	rs.e.log.Debug("ws room unsubscribed", "room", name)
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("leave room[%s]: unsubscribe: %w", name, err)
	}
	return nil
}

// deliver is the room subscription's callback. It only enqueues, never
// blocks: a member whose send queue is full is closed as a slow consumer,
// so no client can stall the room or the NATS connection.
func (r *room) deliver(msg *nats.Msg) {
	typ := websocket.MessageText
	var exclude string
	if msg.Header != nil {
		if msg.Header.Get(HeaderWSType) == "binary" {
			typ = websocket.MessageBinary
		}
		exclude = msg.Header.Get(HeaderExclude)
	}
	for _, c := range *r.members.Load() {
		if c.id != exclude {
			c.send(typ, msg.Data)
		}
	}
}

// publish sends a broadcast to every member of room on every edge.
func (rs *rooms) publish(name string, typ websocket.MessageType, data []byte, exclude string) error {
	h := nats.Header{HeaderWSType: []string{"text"}}
	if typ == websocket.MessageBinary {
		h[HeaderWSType][0] = "binary"
	}
	if exclude != "" {
		h[HeaderExclude] = []string{exclude}
	}
	msg := &nats.Msg{Subject: protocol.RoomSubject(rs.e.cfg.SubjectPrefix, name), Data: data, Header: h}
	if err := rs.e.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("broadcast to room[%s]: %w", name, err)
	}
	rs.e.m.broadcasts.Inc()
	return nil
}

// stats returns the number of rooms with local members and of memberships.
func (rs *rooms) stats() (rooms, members int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.m {
		members += len(*r.members.Load())
	}
	return len(rs.m), members
}

// close unsubscribes every room. Connections leave their rooms as they
// close, so after a clean shutdown there is nothing left to do.
func (rs *rooms) close() error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var errs []error
	for name, r := range rs.m {
		r.members.Store(&[]*conn{})
		if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("room[%s]: unsubscribe: %w", name, err))
		}
		delete(rs.m, name)
		rs.e.m.rooms.Dec()
	}
	return errors.Join(errs...)
}
