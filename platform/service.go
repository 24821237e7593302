package platform

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nylon-functions/nylon/protocol"
)

// service is one function's NATS micro service on this node. It speaks the
// micro v1 protocol exactly as nats.go/micro does — the same control
// subjects ($SRV.PING|INFO|STATS[.name[.id]], from micro.ControlSubject),
// the same JSON documents (micro.Ping, micro.Info, micro.Stats), the same
// error headers (micro.ErrorHeader, micro.ErrorCodeHeader) — so `nats micro
// ls|info|stats` and any micro client see an ordinary micro service.
//
// Why not micro.AddService: micro calls an endpoint's handler on the
// subscription's single goroutine, one message at a time, and times the
// call: processing_time is the time until the handler returns and an error
// is counted only if the handler itself called Request.Error before
// returning. A node must run up to max_workers calls of a function at once,
// so its handler has to hand each message to a worker and return at once;
// micro would then report microseconds of hand-off as processing time and
// never count the errors a worker answers later (recording them through the
// micro.Request from the worker would also race with micro's own read of
// it). No wrapping can fix that: the sum of processing times micro can
// measure on one goroutine is bounded by wall time, while concurrent calls
// legitimately exceed it. So the node keeps micro's wire contract and does
// the accounting itself, per endpoint, when the reply is actually sent:
// num_requests counts answered requests, num_errors every micro error reply
// (400, 413, 500, 503) and every handler failure (trap, timeout, the
// guest's Error action), processing_time the time from receipt to reply,
// queueing included.
//
// Owning the protocol also lets a hot reload change the service's version
// and metadata in place: the instance (and its id and statistics) lives as
// long as the function is served on this node, while micro would need a new
// service per version.
type service struct {
	nc      *nats.Conn
	name    string
	id      string
	started time.Time
	log     *slog.Logger

	ident atomic.Pointer[serviceIdent]

	mu        sync.Mutex
	endpoints []*endpoint
	verbSubs  []*nats.Subscription
	stopped   bool
}

// serviceIdent is the part of a service's identity that changes with the
// deployed version. Stored whole and never mutated afterwards.
type serviceIdent struct {
	version     string
	description string
	metadata    map[string]string
}

// endpoint is one subject of a service: a phase of the function, or its
// WebSocket events.
type endpoint struct {
	name     string
	subject  string
	queue    string
	phase    protocol.Phase
	metadata map[string]string
	sub      *nats.Subscription

	// micro statistics, updated when a reply is sent.
	requests  atomic.Int64
	errors    atomic.Int64
	procNanos atomic.Int64
	lastError atomic.Pointer[string]

	// Extra counters reported in the stats' data field.
	handlerErrors atomic.Int64
	traps         atomic.Int64
	timeouts      atomic.Int64
	overloaded    atomic.Int64
	dedupHits     atomic.Int64

	m *phaseMetrics
}

// record accounts one answered request. errText is empty for a success.
// Callers record before they publish the reply, so that a caller holding
// its reply finds it counted in STATS.
func (e *endpoint) record(start time.Time, errText string) {
	e.procNanos.Add(int64(time.Since(start)))
	if errText != "" {
		e.errors.Add(1)
		last := errText // a copy: taking errText's address would heap-allocate every call
		e.lastError.Store(&last)
	}
	e.requests.Add(1)
}

// endpointData is the data field of an endpoint's STATS entry: what the
// node counts beyond micro's fields.
type endpointData struct {
	HandlerErrors int64 `json:"handler_errors"`
	Traps         int64 `json:"traps"`
	Timeouts      int64 `json:"timeouts"`
	Overloaded    int64 `json:"overloaded"`
	DedupHits     int64 `json:"dedup_hits"`
}

// newService subscribes the control subjects of a new instance of service
// name. Endpoints are added afterwards.
func newService(nc *nats.Conn, name string, ident serviceIdent, log *slog.Logger) (*service, error) {
	s := &service{
		nc:      nc,
		name:    name,
		id:      newServiceID(),
		started: time.Now().UTC(),
		log:     log,
	}
	s.setIdent(ident)
	for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
		handler := s.verbHandler(verb)
		for _, subj := range []struct{ name, id string }{{"", ""}, {name, ""}, {name, s.id}} {
			subject, err := micro.ControlSubject(verb, subj.name, subj.id)
			if err == nil {
				var sub *nats.Subscription
				if sub, err = nc.Subscribe(subject, handler); err == nil {
					s.verbSubs = append(s.verbSubs, sub)
					continue
				}
			}
			s.unsubscribeVerbs()
			return nil, fmt.Errorf("service[%s]: subscribe %s: %w", name, verb, err)
		}
	}
	return s, nil
}

// setIdent replaces the version, description and metadata in place.
func (s *service) setIdent(id serviceIdent) {
	id.metadata = maps.Clone(id.metadata)
	if id.metadata == nil {
		id.metadata = map[string]string{}
	}
	s.ident.Store(&id)
}

// addEndpoint subscribes subject in queue group queue, delivering each
// message to handle on the subscription's goroutine.
func (s *service) addEndpoint(phase protocol.Phase, subject, queue string, metadata map[string]string, m *phaseMetrics, handle func(*endpoint, *nats.Msg)) (*endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, fmt.Errorf("service[%s]: add endpoint %s: stopped", s.name, phase)
	}
	ep := &endpoint{
		name:     phase.String(),
		subject:  subject,
		queue:    queue,
		phase:    phase,
		metadata: maps.Clone(metadata),
		m:        m,
	}
	sub, err := s.nc.QueueSubscribe(subject, queue, func(msg *nats.Msg) { handle(ep, msg) })
	if err != nil {
		return nil, fmt.Errorf("service[%s]: subscribe %s in queue group %s: %w", s.name, subject, queue, err)
	}
	// The handler only admits work, so pending messages stay few; the
	// default pending limits (512k messages, 64 MiB) only guard memory.
	ep.sub = sub
	s.endpoints = append(s.endpoints, ep)
	return ep, nil
}

// endpointList returns the current endpoints.
func (s *service) endpointList() []*endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*endpoint(nil), s.endpoints...)
}

// removeEndpoints drains eps: the server stops sending them messages, the
// ones already received are still handled, then the subscriptions close.
// It returns once they are closed or ctx ends.
func (s *service) removeEndpoints(ctx context.Context, eps []*endpoint) error {
	s.mu.Lock()
	s.endpoints = deleteAll(s.endpoints, eps)
	s.mu.Unlock()
	return drainSubs(ctx, s.nc, endpointSubs(eps))
}

// stop unsubscribes the control subjects (the instance vanishes from
// discovery at once) and drains every endpoint, returning once they are
// closed or ctx ends. Safe to call twice.
func (s *service) stop(ctx context.Context) error { return s.startStop()(ctx) }

// startStop is the first half of stop: it stops discovery and starts the
// drain of every endpoint without waiting. The returned function waits.
func (s *service) startStop() func(context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return func(context.Context) error { return nil }
	}
	s.stopped = true
	eps := s.endpoints
	s.endpoints = nil
	s.mu.Unlock()
	s.unsubscribeVerbs()
	return startDrain(s.nc, endpointSubs(eps))
}

func (s *service) unsubscribeVerbs() {
	for _, sub := range s.verbSubs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			s.log.Warn("service: unsubscribe control subject", "subject", sub.Subject, "err", err)
		}
	}
	s.verbSubs = nil
}

func endpointSubs(eps []*endpoint) []*nats.Subscription {
	subs := make([]*nats.Subscription, 0, len(eps))
	for _, ep := range eps {
		subs = append(subs, ep.sub)
	}
	return subs
}

// drainSubs drains subs and waits until every one is closed or ctx ends.
func drainSubs(ctx context.Context, nc *nats.Conn, subs []*nats.Subscription) error {
	return startDrain(nc, subs)(ctx)
}

// drainPoll is how often a drain waiting while the connection is down
// looks whether what its subscriptions received has been handled.
const drainPoll = 10 * time.Millisecond

// startDrain starts draining subs and returns a function that waits for
// them to close. nats.go closes a draining subscription once its last
// pending message's callback has returned.
//
// While the connection is down it does so only after a flush that cannot
// complete before the connection is back, up to 10 s: a node stopped
// during a NATS outage would wait that long for nothing, since the server
// dropped the subscriptions with the connection. So the wait closes a
// subscription itself once the connection is down and the messages it had
// received have been handed to the handler.
func startDrain(nc *nats.Conn, subs []*nats.Subscription) func(context.Context) error {
	closed := make([]<-chan nats.SubStatus, 0, len(subs))
	var errs []error
	for _, sub := range subs {
		ch := sub.StatusChanged(nats.SubscriptionClosed)
		if err := sub.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, fmt.Errorf("drain %s: %w", sub.Subject, err))
		}
		closed = append(closed, ch)
	}
	return func(ctx context.Context) error {
		// The connection may go down while this waits, too.
		poll := time.NewTicker(drainPoll)
		defer poll.Stop()
		for i, ch := range closed {
		wait:
			for {
				select {
				case _, ok := <-ch:
					if !ok {
						break wait
					}
				case <-poll.C:
					closeIfHandled(nc, subs[i])
				case <-ctx.Done():
					errs = append(errs, fmt.Errorf("drain: %w", ctx.Err()))
					return errors.Join(errs...)
				}
			}
		}
		return errors.Join(errs...)
	}
}

// closeIfHandled unsubscribes sub, draining while the connection is down,
// once no message it received waits for its handler.
func closeIfHandled(nc *nats.Conn, sub *nats.Subscription) {
	if nc.IsConnected() || nc.IsClosed() {
		return // nats.go's drain completes by itself
	}
	if msgs, _, err := sub.Pending(); err == nil && msgs == 0 {
		// Fails only for a subscription already closed, which is what
		// the caller waits for.
		_ = sub.Unsubscribe()
	}
}

func deleteAll[T comparable](s []T, del []T) []T {
	out := s[:0]
	for _, x := range s {
		keep := true
		for _, d := range del {
			if x == d {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	clear(s[len(out):])
	return out
}

// verbHandler answers one control verb.
func (s *service) verbHandler(verb micro.Verb) nats.MsgHandler {
	return func(m *nats.Msg) {
		if m.Reply == "" {
			// Nobody asked for an answer; logging the failed Respond
			// would let one publisher fill every node's log.
			return
		}
		var v any
		switch verb {
		case micro.PingVerb:
			v = s.ping()
		case micro.InfoVerb:
			v = s.info()
		default:
			v = s.stats()
		}
		b, err := json.Marshal(v)
		if err == nil {
			err = m.Respond(b)
		}
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			s.log.Warn("service: answer control request", "verb", verb.String(), "err", err)
		}
	}
}

func (s *service) identity() micro.ServiceIdentity {
	id := s.ident.Load()
	return micro.ServiceIdentity{
		Name:     s.name,
		ID:       s.id,
		Version:  id.version,
		Metadata: maps.Clone(id.metadata),
	}
}

func (s *service) ping() micro.Ping {
	return micro.Ping{ServiceIdentity: s.identity(), Type: micro.PingResponseType}
}

func (s *service) info() micro.Info {
	eps := s.endpointList()
	info := micro.Info{
		ServiceIdentity: s.identity(),
		Type:            micro.InfoResponseType,
		Description:     s.ident.Load().description,
		Endpoints:       make([]micro.EndpointInfo, 0, len(eps)),
	}
	for _, ep := range eps {
		info.Endpoints = append(info.Endpoints, micro.EndpointInfo{
			Name:       ep.name,
			Subject:    ep.subject,
			QueueGroup: ep.queue,
			Metadata:   maps.Clone(ep.metadata),
		})
	}
	return info
}

func (s *service) stats() micro.Stats {
	eps := s.endpointList()
	st := micro.Stats{
		ServiceIdentity: s.identity(),
		Type:            micro.StatsResponseType,
		Started:         s.started,
		Endpoints:       make([]*micro.EndpointStats, 0, len(eps)),
	}
	for _, ep := range eps {
		n := ep.requests.Load()
		proc := time.Duration(ep.procNanos.Load())
		es := &micro.EndpointStats{
			Name:           ep.name,
			Subject:        ep.subject,
			QueueGroup:     ep.queue,
			NumRequests:    int(n),
			NumErrors:      int(ep.errors.Load()),
			ProcessingTime: proc,
		}
		if n > 0 {
			es.AverageProcessingTime = proc / time.Duration(n)
		}
		if last := ep.lastError.Load(); last != nil {
			es.LastError = *last
		}
		es.Data, _ = json.Marshal(endpointData{
			HandlerErrors: ep.handlerErrors.Load(),
			Traps:         ep.traps.Load(),
			Timeouts:      ep.timeouts.Load(),
			Overloaded:    ep.overloaded.Load(),
			DedupHits:     ep.dedupHits.Load(),
		})
		st.Endpoints = append(st.Endpoints, es)
	}
	return st
}

// newServiceID returns 22 random base62 characters, the shape of the nuid
// ids nats.go/micro gives its instances.
func newServiceID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [22]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
