package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/internal/logsample"
	"github.com/nylon-functions/nylon/protocol"
)

// Headers of a dead letter, beside traceparent and Nylon-Env. The body is
// the PluginRequest exactly as it was sent, so replaying is republishing it
// to the phase subject.
const (
	HeaderErrorKind = "Nylon-Error-Kind" // Timeout, NoResponder, Decode, Overloaded, Internal
	HeaderError     = "Nylon-Error"      // the last attempt's error, truncated
	HeaderAttempts  = "Nylon-Attempts"   // attempts made
	HeaderRoute     = "Nylon-Route"      // the route pattern the request matched
	HeaderPlugin    = "Nylon-Plugin"     // the plugin's configured name
	HeaderRequestID = "Nylon-Request-Id" // the request_id, as a UUID
)

// DLQStreamName is the JetStream stream capturing {prefix}.dlq.>:
// NYLON_DLQ_DEV for "nylon.dev"; other prefixes are upper-cased with every
// character other than a letter, a digit, '-' or '_' as '_'
// (NYLON_DLQ_ACME_PROD for "acme.prod").
//
// The name is not unique to a prefix: "x" and "nylon.x", "a.b" and "a_b",
// "Acme" and "acme" share one. It stays this way because renaming would
// orphan every deployed stream; EnsureDLQ and ListDLQ instead refuse a
// stream whose subjects are not the prefix's own (ErrDLQConflict).
func DLQStreamName(prefix string) string {
	p := strings.TrimPrefix(prefix, "nylon.")
	b := []byte(strings.ToUpper(p))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return "NYLON_DLQ_" + string(b)
}

// checkDLQOwner returns an error wrapping ErrDLQConflict unless subjects,
// those of the stream name, are exactly prefix's {prefix}.dlq.>: anything
// else is the stream of another prefix whose name collides with this one
// (or one an operator pointed elsewhere), and updating it would take its
// subjects away, so its environment's dead letters would no longer be kept.
func checkDLQOwner(name, prefix string, subjects []string) error {
	want := protocol.DLQWildcard(prefix)
	if len(subjects) == 1 && subjects[0] == want {
		return nil
	}
	if slices.Contains(subjects, want) {
		// No other prefix's stream can hold this prefix's subjects (streams
		// may not overlap): it is this one's, edited by hand. Removing it,
		// the advice below, would delete this environment's dead letters.
		return fmt.Errorf("dlq stream[%s]: %w: it holds subjects %q, %q of subject prefix %q and others besides "+
			"(edited by hand?); a gateway neither takes them away nor keeps dead letters in a stream shared with them: "+
			"restore its subjects (nats stream edit %s --subjects '%s') and keep the others in a stream of their own",
			name, ErrDLQConflict, subjects, want, prefix, name, want)
	}
	return fmt.Errorf("dlq stream[%s]: %w: it holds subjects %q, not %q of subject prefix %q "+
		"(a stream name drops a leading \"nylon.\", upper-cases the rest and turns characters other than letters, digits, '-' and '_' into '_', so prefixes can share one); "+
		"use a subject prefix whose stream name is not %s, or remove the other stream (nats stream rm %s) once its dead letters are no longer needed",
		name, ErrDLQConflict, subjects, want, prefix, name, name)
}

// EnsureDLQ creates the dead-letter stream of prefix, or updates the one
// that exists: subjects {prefix}.dlq.>, limits retention, oldest dropped
// past MaxMsgs or MaxBytes, messages expire after MaxAgeHours (default 7
// days). Its
// replicas are cfg.Replicas when set; otherwise a new stream gets replicas
// and an existing one keeps its own, so that a gateway started without
// the cluster's setting cannot shrink a replicated stream (an operator may
// also have scaled it with `nats stream edit`).
//
// A stream of that name whose subjects are not exactly {prefix}.dlq.> is
// left alone and the error wraps ErrDLQConflict (see DLQStreamName).
func EnsureDLQ(ctx context.Context, js jetstream.JetStream, prefix string, cfg DLQConfig, replicas int) (jetstream.Stream, error) {
	s, _, err := ensureDLQ(ctx, js, prefix, cfg, replicas)
	return s, err
}

// ensureDLQ is EnsureDLQ, reporting also whether it created the stream
// (false: it updated one that exists), so that the dead-letter writer
// logs a re-creation only when it made one.
func ensureDLQ(ctx context.Context, js jetstream.JetStream, prefix string, cfg DLQConfig, replicas int) (jetstream.Stream, bool, error) {
	maxMsgs := cfg.MaxMsgs
	if maxMsgs == 0 {
		maxMsgs = DefaultDLQMaxMsgs
	}
	maxBytes := cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultDLQMaxBytes
	}
	maxAge := DefaultDLQMaxAge
	if cfg.MaxAgeHours > 0 {
		maxAge = time.Duration(cfg.MaxAgeHours) * time.Hour
	}
	name := DLQStreamName(prefix)
	sc := jetstream.StreamConfig{
		Name:        name,
		Description: "Nylon gateway dead letters: phase requests that failed their last attempt",
		Subjects:    []string{protocol.DLQWildcard(prefix)},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     maxMsgs,
		MaxBytes:    maxBytes,
		MaxAge:      maxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		AllowDirect: true,
	}
	if cfg.Replicas > 0 {
		sc.Replicas = cfg.Replicas
	}
	// Create and update are separate calls, not CreateOrUpdateStream, so
	// that an existing stream's subjects are checked before it is changed.
	// Two attempts: a gateway of the same or a colliding prefix may create
	// the stream between the lookup and the create, and the second round
	// checks what it made.
	for range 2 {
		s, err := js.Stream(ctx, name)
		switch {
		case err == nil:
			cur := s.CachedInfo().Config
			if err := checkDLQOwner(name, prefix, cur.Subjects); err != nil {
				return nil, false, err
			}
			if cfg.Replicas == 0 {
				sc.Replicas = cur.Replicas
			}
			s, err = js.UpdateStream(ctx, sc)
			if err != nil {
				return nil, false, fmt.Errorf("dlq stream[%s]: update: %w", name, err)
			}
			return s, false, nil
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, false, fmt.Errorf("dlq stream[%s]: %w", name, err)
		}
		s, err = js.CreateStream(ctx, sc)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("dlq stream[%s]: create: %w", name, err)
		}
		return s, true, nil
	}
	return nil, false, fmt.Errorf("dlq stream[%s]: created and removed by others while ensuring it for subject prefix %q", name, prefix)
}

// restoreDLQ makes the dead-letter stream of prefix again with ensureDLQ
// (the settings, replicas and ownership check of Start) when it is
// missing, and reports whether it created it. A stream that exists is
// left as it is and created is false: a stream without a leader answers
// no publish either, and updating it then would undo what an operator
// changed with `nats stream edit` since the gateway started. One that
// holds other subjects (another prefix's, see DLQStreamName) is an error
// wrapping ErrDLQConflict, as at Start.
func restoreDLQ(ctx context.Context, js jetstream.JetStream, prefix string, cfg DLQConfig, replicas int) (bool, error) {
	name := DLQStreamName(prefix)
	s, err := js.Stream(ctx, name)
	switch {
	case err == nil:
		return false, checkDLQOwner(name, prefix, s.CachedInfo().Config.Subjects)
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return false, fmt.Errorf("dlq stream[%s]: look up: %w", name, err)
	}
	_, created, err := ensureDLQ(ctx, js, prefix, cfg, replicas)
	return created, err
}

// Start creates or updates the dead-letter stream of every messaging
// config (once per connection and prefix) whose DLQ is not disabled.
// Without it, dead letters are published but nothing keeps them. A stream
// deleted later, while the gateway runs, is created again with the same
// settings by the dead-letter writer when a letter finds none.
func (g *Gateway) Start(ctx context.Context) error {
	// Reload copies each config's stream into the configs it makes: it
	// must see those Start sets.
	g.mu.Lock()
	defer g.mu.Unlock()
	type key struct {
		nc     *nats.Conn
		prefix string
	}
	done := map[key]*dlqStream{}
	for _, m := range g.conf.Load().msgs {
		k := key{m.nc, m.prefix}
		if m.cfg.DLQ.Disabled {
			continue
		}
		if ds, ok := done[k]; ok {
			m.dlq = ds
			continue
		}
		js, err := jetstream.New(m.nc)
		if err != nil {
			return fmt.Errorf("gateway: messaging[%s]: %w", m.cfg.Name, err)
		}
		if _, err := EnsureDLQ(ctx, js, m.prefix, m.cfg.DLQ, g.opts.replicas); err != nil {
			return fmt.Errorf("gateway: messaging[%s]: %w", m.cfg.Name, err)
		}
		// The writer re-creates a stream deleted while the gateway runs
		// with the settings that made it here: those of the first config
		// on this connection and prefix.
		ds := &dlqStream{js: js, messaging: m.cfg.Name, prefix: m.prefix, cfg: m.cfg.DLQ, replicas: g.opts.replicas}
		done[k] = ds
		m.dlq = ds
	}
	// Published last: StoreDeadLetter, which another edge may call at any
	// time, reads dlq only once this is set.
	g.dlqReady.Store(true)
	return nil
}

// StoreDeadLetter queues a dead letter built by another edge of the same
// process (the WebSocket edge, through ws.WithDeadLetterSink) on the
// gateway's dead-letter writer, which stores it with acknowledged
// JetStream publishes and retries while the stream has no leader, as it
// does the gateway's own. A core publish would be dropped silently then.
//
// msg.Subject must be protocol.DLQSubject(prefix, function, phase) under
// the prefix of a messaging config whose stream Start made; the function
// routes' config is tried first, then the others in order, and the first
// that matches stores the letter on its connection. The gateway takes msg:
// the caller must not change it, or its Data, afterwards. The letter's
// Nats-Msg-Id (the stream drops a second copy of a retried publish) is
// "{subject}/{Nylon-Request-Id header}", so that header must be unique per
// letter; without it a fresh id is used.
//
// It returns false, having counted and logged nothing, when msg is nil, no
// config matches, Start has not returned, or the queue is full or closed:
// the caller counts and logs that loss. A letter accepted but not stored
// within 30 s, or abandoned by Close, is counted by the gateway in
// plugins_messaging_dlq_lost_total{plugin=function, phase=phase} (the
// labels of a function route's own letters) and logged as "gateway: dead
// letter lost". Accepted letters are not counted in
// plugins_messaging_dlq_total: the caller counts what it dead-letters.
func (g *Gateway) StoreDeadLetter(msg *nats.Msg) bool {
	if msg == nil || !g.dlqReady.Load() {
		return false
	}
	m, st, ok := g.dlqConfigOf(msg.Subject)
	if !ok {
		return false
	}
	id := msg.Header.Get(HeaderRequestID)
	if id == "" {
		id = protocol.NewRequestID().String()
	}
	return g.dlq.enqueue(dlqJob{ds: m.dlq, msg: msg, id: id,
		lost: g.met.dlqLost.WithLabelValues(st.Function, st.Phase.String())})
}

// dlqConfigOf returns the messaging config with a dead-letter stream whose
// prefix subject is a dead-letter subject of, and the subject's function
// and phase; the function routes' config first.
func (g *Gateway) dlqConfigOf(subject string) (*messaging, protocol.SubjectTarget, bool) {
	c := g.conf.Load()
	for i := -1; i < len(c.msgs); i++ {
		m := c.fnMsg
		if i >= 0 {
			m = c.msgs[i]
		}
		if m.dlq == nil {
			continue
		}
		if st, err := protocol.ParseSubject(m.prefix, subject); err == nil && st.DLQ {
			return m, st, true
		}
	}
	return nil, protocol.SubjectTarget{}, false
}

// deadLetter publishes a request after its last failed attempt. Once Start
// made the stream, the letter goes to the dead-letter writer, which stores
// it with a JetStream publish off the request path (the request must not
// wait for an acknowledgement, and a core publish is dropped silently
// while the stream has no leader). Before Start, or without a stream, it
// is a core publish that nothing may keep. It returns the subject the
// letter went to, for the request's log line, or "" when it did not go:
// dead letters disabled, or the letter lost (logged at ERROR, sampled).
func (g *Gateway) deadLetter(t *target, ph protocol.Phase, payload []byte, id protocol.RequestID, meta *callMeta, cause error, attempts int) string {
	if t.msg.cfg.DLQ.Disabled {
		return ""
	}
	msg := &nats.Msg{
		Subject: t.dlqSubject[ph],
		Data:    payload,
		Header: nats.Header{
			HeaderErrorKind:            []string{kindOf(cause)},
			HeaderError:                []string{truncate(cause.Error(), 256)},
			HeaderAttempts:             []string{strconv.Itoa(attempts)},
			HeaderRoute:                []string{meta.route},
			HeaderPlugin:               []string{t.name},
			HeaderRequestID:            []string{id.String()},
			protocol.HeaderTraceparent: []string{meta.trace},
			protocol.HeaderEnv:         []string{t.msg.env},
		},
	}
	if ds := t.msg.dlq; ds != nil {
		// The caller reuses payload once the request is answered.
		msg.Data = append([]byte(nil), payload...)
		if !g.dlq.enqueue(dlqJob{ds: ds, msg: msg, id: id.String(), lost: t.metrics[ph].dlqLost}) {
			t.metrics[ph].dlqLost.Inc()
			g.logLost(msg.Subject, id, meta, "dead-letter queue full or closed")
			return ""
		}
	} else if err := t.msg.nc.PublishMsg(msg); err != nil {
		g.logLost(msg.Subject, id, meta, err)
		return ""
	}
	t.metrics[ph].dlq.Inc()
	// Detail of the failure the caller logs once, with the subject.
	if g.log.Enabled(context.Background(), slog.LevelDebug) {
		g.log.Debug("gateway: request dead-lettered", "subject", msg.Subject, "plugin", t.name,
			"request_id", id.String(), "attempts", attempts, "kind", kindOf(cause), "traceparent", meta.trace, "route", meta.route)
	}
	return msg.Subject
}

// logLost logs a dead letter that could not be queued or published: an
// ERROR, as the request is then only in the logs, but sampled per subject,
// as a stream without a leader under an error storm loses one per request
// (plugins_messaging_dlq_lost_total counts every one).
func (g *Gateway) logLost(subject string, id protocol.RequestID, meta *callMeta, cause any) {
	const msg = "gateway: dead letter lost"
	if !g.sampler.Allow(context.Background(), slog.LevelError, logsample.KeyOf(msg, "subject", subject)) {
		return
	}
	g.log.Error(msg, "subject", subject, "request_id", id.String(), "route", meta.route,
		"traceparent", meta.trace, "error", cause)
}

// DeadLetter is one message of a dead-letter stream.
type DeadLetter struct {
	Sequence    uint64
	Time        time.Time
	Subject     string
	Function    string
	Phase       protocol.Phase
	Plugin      string
	Route       string
	Kind        string
	Error       string
	Attempts    int
	Traceparent string
	RequestID   protocol.RequestID
	SessionID   uint32
	// Payload is the PluginRequest as sent; republish it to
	// protocol.PhaseSubject(prefix, Function, Phase) to replay.
	Payload []byte
}

// ListDLQ returns the newest limit dead letters under prefix (default and
// maximum 1000), oldest first. It reads the stream EnsureDLQ made; a missing
// stream is an error wrapping jetstream.ErrStreamNotFound, and one whose
// subjects are not exactly {prefix}.dlq.> (another prefix's, see
// DLQStreamName) an error wrapping ErrDLQConflict.
func ListDLQ(ctx context.Context, js jetstream.JetStream, prefix string, limit int) ([]DeadLetter, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	s, err := OpenDLQ(ctx, js, prefix)
	if err != nil {
		return nil, err
	}
	name := DLQStreamName(prefix)
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return nil, nil
	}
	start := st.FirstSeq
	if st.LastSeq >= uint64(limit) && st.LastSeq-uint64(limit)+1 > start {
		start = st.LastSeq - uint64(limit) + 1
	}
	var out []DeadLetter
	for seq := start; seq <= st.LastSeq && len(out) < limit; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(protocol.DLQWildcard(prefix)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("dlq stream[%s] seq %d: %w", name, seq, err)
		}
		out = append(out, ParseDeadLetter(prefix, m))
		seq = m.Sequence + 1
	}
	return out, nil
}

// OpenDLQ returns the dead-letter stream of prefix, for reading and
// deleting its letters by sequence (`nylon dlq replay`), with its info as
// of now in CachedInfo. A missing stream is an error wrapping
// jetstream.ErrStreamNotFound, and one whose subjects are not exactly
// {prefix}.dlq.> an error wrapping ErrDLQConflict: another prefix's stream
// would hand out that environment's letters as if they were this one's.
func OpenDLQ(ctx context.Context, js jetstream.JetStream, prefix string) (jetstream.Stream, error) {
	name := DLQStreamName(prefix)
	// js.Stream fetches the stream's info, so CachedInfo is current.
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("dlq stream[%s]: %w", name, err)
	}
	if err := checkDLQOwner(name, prefix, s.CachedInfo().Config.Subjects); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseDeadLetter reads a message of prefix's dead-letter stream. Function
// stays empty when the subject is not a dead-letter subject of prefix (the
// stream captures {prefix}.dlq.>, whatever the tokens after it); the
// request id comes from the body, else from the Nylon-Request-Id header.
func ParseDeadLetter(prefix string, m *jetstream.RawStreamMsg) DeadLetter {
	d := DeadLetter{
		Sequence:    m.Sequence,
		Time:        m.Time,
		Subject:     m.Subject,
		Plugin:      m.Header.Get(HeaderPlugin),
		Route:       m.Header.Get(HeaderRoute),
		Kind:        m.Header.Get(HeaderErrorKind),
		Error:       m.Header.Get(HeaderError),
		Traceparent: m.Header.Get(protocol.HeaderTraceparent),
		Payload:     m.Data,
	}
	d.Attempts, _ = strconv.Atoi(m.Header.Get(HeaderAttempts))
	if st, err := protocol.ParseSubject(prefix, m.Subject); err == nil {
		d.Function, d.Phase = st.Function, st.Phase
	}
	var req protocol.PluginRequest
	if protocol.DecodeRequest(m.Data, &req) == nil {
		d.RequestID, d.SessionID = req.RequestID, req.SessionID
	} else if id, err := protocol.ParseRequestID(m.Header.Get(HeaderRequestID)); err == nil {
		d.RequestID = id
	}
	return d
}
