package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// function is one function served by the node: its micro service, its
// serving version(s) and its idempotency cache.
//
// Changes (a new version, a delete) arrive from the registry watch and are
// applied one at a time by a loader goroutine started on demand; a change
// that arrives while one is applied replaces any change still waiting, so
// the function converges on the newest state without loading versions that
// are already superseded.
type function struct {
	node  *Node
	name  string
	log   *slog.Logger
	dedup *dedupCache

	// route is what dispatch serves from: swapped atomically.
	route atomic.Pointer[route]

	lastNewerWarn atomic.Int64

	// opMu serialises what changes the service and the route: loads,
	// unloads and the node's drain.
	opMu sync.Mutex
	svc  *service
	eps  []*endpoint

	mu        sync.Mutex
	pending   *change
	loading   bool
	deleted   bool
	firstDone chan struct{} // closed after the first change is applied
	firstOnce sync.Once
	loadErr   loadError
	desired   uint64        // the newest version the registry made active
	wake      chan struct{} // a change is pending: ends a wait to retry a load
}

// route is a function's serving table. During a hot reload prev is the
// version being replaced: it still serves the phases the new version
// dropped until their endpoints are drained.
type route struct {
	cur, prev *version
}

// change is what the registry asks of a function.
type change struct {
	rec    registry.Record
	delete bool
}

// loadError is the latest failed load, cleared by a successful one.
type loadError struct {
	version uint64
	text    string
	at      time.Time
}

func newFunction(n *Node, name string) *function {
	f := &function{
		node:      n,
		name:      name,
		log:       n.log.With("function", name),
		firstDone: make(chan struct{}),
		wake:      make(chan struct{}, 1),
	}
	if n.cfg.DedupWindow > 0 {
		f.dedup = newDedupCache(n.cfg.DedupWindow, n.cfg.DedupMaxEntries, n.cfg.DedupMaxBytes)
	}
	return f
}

// serving returns the version of rt that serves phase: the current one,
// else the previous one while a version that dropped the phase takes over,
// or nil.
func (rt *route) serving(phase protocol.Phase) *version {
	if rt.cur.phases.Has(phase) {
		return rt.cur
	}
	if rt.prev != nil && rt.prev.phases.Has(phase) {
		return rt.prev
	}
	return nil
}

// acquire returns the version serving phase with a reference taken, or nil.
func (f *function) acquire(phase protocol.Phase) *version {
	for {
		rt := f.route.Load()
		if rt == nil {
			return nil
		}
		v := rt.serving(phase)
		if v == nil {
			return nil
		}
		if v.acquire() {
			return v
		}
		// Retired between the load and the acquire: the route has moved on.
		if f.route.Load() == rt {
			return nil
		}
	}
}

// currentLoadError returns the failed load that makes the function
// degraded: one of the version the registry wants now. An error of another
// version is stale (a newer change is on its way) and is not reported.
func (f *function) currentLoadError() (loadError, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	le := f.loadErr
	return le, le.text != "" && le.version == f.desired
}

// enqueue schedules ch, replacing a change not yet started. It reports
// false when the function was deleted and removed from the node: the
// caller then creates a new one.
func (f *function) enqueue(ch change) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deleted {
		return false
	}
	if !ch.delete {
		f.desired = ch.rec.Version
	}
	f.pending = &ch
	select {
	case f.wake <- struct{}{}:
	default:
	}
	if !f.loading {
		f.loading = true
		f.node.loaders.Add(1)
		go f.loadLoop()
	}
	return true
}

// loadLoop applies pending changes until none is left.
func (f *function) loadLoop() {
	defer f.node.loaders.Done()
	for {
		f.mu.Lock()
		ch := f.pending
		f.pending = nil
		select {
		case <-f.wake: // taken with the change
		default:
		}
		if ch == nil {
			f.loading = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()

		if ch.delete {
			f.unload(f.node.ctx)
			if f.node.removeIfIdle(f) {
				f.firstOnce.Do(func() { close(f.firstDone) })
				return // removeIfIdle ended the loop's bookkeeping
			}
		} else {
			f.loadRetrying(ch.rec)
		}
		f.firstOnce.Do(func() { close(f.firstDone) })
	}
}

// loadRetrying loads rec, and loads it again, with backoff, while it fails
// for a reason that can pass (the registry could not be read: NATS or
// JetStream trouble, an object a lagging replica does not have yet), until
// a newer change arrives or the node drains. A module that does not
// compile or validate fails the same way every time and is not retried.
func (f *function) loadRetrying(rec registry.Record) {
	for failures := 1; ; failures++ {
		var transient *transientLoadError
		if err := f.load(f.node.ctx, rec); !errors.As(err, &transient) {
			return
		}
		// The node is ready once each function has had a first go.
		f.firstOnce.Do(func() { close(f.firstDone) })
		delay := min(time.Second<<min(failures-1, 5), 30*time.Second)
		f.log.Warn("platform: retrying the load", "version", rec.Version, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-f.wake:
		case <-f.node.ctx.Done():
		}
		t.Stop()
		if f.node.ctx.Err() != nil || f.superseded(rec) {
			return
		}
	}
}

// load fetches, verifies and compiles rec's module and swaps it in. On
// failure the serving version (if any) keeps serving and the error is
// reported in the log, the metrics and /healthz, and returned.
func (f *function) load(ctx context.Context, rec registry.Record) error {
	f.opMu.Lock()
	defer f.opMu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The series exists at 0 from the first load on, like the other
	// counters of a served function: a series born at 1 would hide the
	// first failure from increase(). unload drops it, so it is made here,
	// under opMu, on every load, not only when the function is created.
	f.node.metrics.loadErrors.WithLabelValues(f.name)
	if rt := f.route.Load(); rt != nil && rt.cur.rec.Version == rec.Version && rt.cur.rec.SHA256 == rec.SHA256 {
		// Already serving it (a restarted watch, or a rollback to the
		// version that kept serving after a newer one failed to load).
		f.mu.Lock()
		f.loadErr = loadError{}
		f.mu.Unlock()
		return nil
	}
	// Loads take turns (Config.MaxConcurrentLoads): a node starting with
	// many functions would otherwise fetch every module at once.
	release, err := f.node.loadSlot(ctx)
	if err != nil {
		return err // draining
	}
	start := time.Now()
	v, err := f.prepare(ctx, rec)
	release() // the swap below is quick, or waits on NATS, not the CPU
	if err == nil {
		err = f.swap(ctx, v)
		if err != nil {
			v.retire()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // draining: not the module's fault
		}
		f.node.metrics.loadErrors.WithLabelValues(f.name).Inc()
		// still_serving is the version that goes on serving, "none" for a
		// function this node has not served yet (its first version failed).
		serving := "none"
		if rt := f.route.Load(); rt != nil {
			serving = strconv.FormatUint(rt.cur.rec.Version, 10)
		}
		f.log.Error("platform: load failed", "version", rec.Version, "sha256", rec.SHA256,
			"still_serving", serving, "err", err)
		f.mu.Lock()
		f.loadErr = loadError{version: rec.Version, text: err.Error(), at: time.Now()}
		f.mu.Unlock()
		return err
	}
	f.mu.Lock()
	f.loadErr = loadError{}
	f.mu.Unlock()
	f.log.Info("platform: serving version", "version", rec.Version, "sha256", rec.SHA256,
		"phases", v.phases.Names(), "workers", v.workers, "load_time", time.Since(start))
	return nil
}

// prepare fetches and compiles rec into a ready, not yet serving version.
func (f *function) prepare(ctx context.Context, rec registry.Record) (*version, error) {
	n := f.node
	ctx, cancel := context.WithTimeout(ctx, n.cfg.LoadTimeout)
	defer cancel()
	wasm, err := f.fetch(ctx, rec)
	if err != nil {
		return nil, err
	}
	timeout := rec.Limits.Timeout()
	if timeout == 0 {
		timeout = n.cfg.Timeout
	}
	workers := rec.Limits.MaxWorkers
	if workers == 0 {
		workers = n.cfg.MaxWorkers
	}
	limits := wasmhost.Limits{
		Timeout:    timeout,
		MemoryMB:   uint32(rec.Limits.MemoryMB),
		MaxWorkers: workers,
	}
	if limits.MemoryMB == 0 {
		limits.MemoryMB = uint32(n.cfg.MemoryMB)
	}
	if body := rec.Limits.MaxBodyBytes; body > 0 {
		// The body may take all of max_body_bytes: the rest of the
		// invocation gets the room dispatch admits beyond it.
		limits.MaxInput, limits.MaxOutput = int(body)+protocol.RequestOverhead, int(body)
		if np := n.nc.MaxPayload(); np > 0 && body+protocol.RequestOverhead > np {
			// Deployed around the admin API's check, or the server's
			// max_payload shrank since: requests that big cannot reach us.
			f.log.Warn("platform: max_body_bytes is more than NATS carries; larger requests cannot be published",
				"version", rec.Version, "max_body_bytes", body, "nats_max_payload", np)
		}
	} else if n.cfg.MaxBodyBytes > 0 {
		limits.MaxInput, limits.MaxOutput = int(n.cfg.MaxBodyBytes), int(n.cfg.MaxBodyBytes)
	}
	mod, err := n.host.Compile(ctx, f.name+"@"+strconv.FormatUint(rec.Version, 10), wasm, limits)
	if err != nil {
		return nil, fmt.Errorf("compile version %d: %w", rec.Version, err)
	}
	if got := mod.Phases(); got != rec.PhaseSet {
		f.log.Warn("platform: module phases differ from the record; serving the module's",
			"version", rec.Version, "module", got.Names(), "record", rec.Phases)
	}
	// Instantiate as many instances as the version being replaced has, so
	// the first requests after the swap do not each pay a Go guest's
	// start-up (milliseconds). A function new to this node starts with the
	// one instance Compile made: warming more for each of a node's many
	// functions, most of them seldom called, would cost start-up time and
	// memory (a few MiB each) that their traffic may never need.
	warm := 1
	if rt := f.route.Load(); rt != nil {
		warm = rt.cur.mod.Stats().Live
	}
	if err := mod.Warm(ctx, min(workers, warm, runtime.GOMAXPROCS(0))); err != nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("start version %d: %w", rec.Version, err)
	}
	return newVersion(f, rec, mod, timeout, workers, n.cfg.QueueLength), nil
}

// fetch reads rec's module from the registry. A failure other than
// corrupt bytes is a *transientLoadError: NATS or JetStream trouble, or an
// object that a lagging replica answering the read does not have yet.
func (f *function) fetch(ctx context.Context, rec registry.Record) ([]byte, error) {
	wasm, err := f.node.reg.Module(ctx, rec)
	switch {
	case err == nil:
		return wasm, nil
	case errors.Is(err, registry.ErrCorruptModule), ctx.Err() != nil:
		return nil, fmt.Errorf("fetch version %d: %w", rec.Version, err)
	default:
		return nil, &transientLoadError{fmt.Errorf("fetch version %d: %w", rec.Version, err)}
	}
}

// transientLoadError is a load that failed for a reason that can pass.
type transientLoadError struct{ err error }

func (e *transientLoadError) Error() string { return e.err.Error() }
func (e *transientLoadError) Unwrap() error { return e.err }

// superseded reports whether a newer change waits behind rec.
func (f *function) superseded(rec registry.Record) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending != nil
}

// swap makes v the serving version without failing a request:
//
//  1. the route points to v, keeping the old version as prev for the
//     phases v dropped; the service's version and metadata change in place;
//  2. endpoints for v's new phases (or a new queue group) are subscribed;
//  3. endpoints v no longer has are drained: messages already delivered to
//     them still run, on prev;
//  4. the route drops prev, which is retired: its admitted requests finish
//     on it, then its module is closed.
//
// On the first load the service is created with v's endpoints.
func (f *function) swap(ctx context.Context, v *version) error {
	n := f.node
	queue := v.rec.QueueGroup
	if queue == "" {
		queue = f.name
	}
	ident := f.ident(v)
	if f.svc == nil {
		svc, err := newService(n.nc, f.name, ident, f.log)
		if err != nil {
			return err
		}
		f.route.Store(&route{cur: v})
		var eps []*endpoint
		for _, p := range servedPhases(v.phases) {
			ep, err := svc.addEndpoint(p, protocol.PhaseSubject(n.cfg.SubjectPrefix, f.name, p), queue,
				map[string]string{"phase": p.String()}, n.metrics.phase(f.name, p), f.dispatch)
			if err != nil {
				f.route.Store(nil)
				_ = svc.stop(ctx)
				return err
			}
			eps = append(eps, ep)
		}
		f.svc, f.eps = svc, eps
		f.flushInterest(ctx)
		return nil
	}

	old := f.route.Load()
	var prev *version
	if old != nil {
		prev = old.cur
	}
	f.route.Store(&route{cur: v, prev: prev})
	f.svc.setIdent(ident)

	var keep, drop []*endpoint
	for _, ep := range f.eps {
		if v.phases.Has(ep.phase) && ep.queue == queue {
			keep = append(keep, ep)
		} else {
			drop = append(drop, ep)
		}
	}
	for _, p := range servedPhases(v.phases) {
		if hasEndpoint(keep, p) {
			continue
		}
		ep, err := f.svc.addEndpoint(p, protocol.PhaseSubject(n.cfg.SubjectPrefix, f.name, p), queue,
			map[string]string{"phase": p.String()}, n.metrics.phase(f.name, p), f.dispatch)
		if err != nil {
			// Keep serving prev: undo what this swap added.
			f.route.Store(old)
			f.svc.setIdent(f.ident(prev))
			_ = f.svc.removeEndpoints(ctx, endpointsNotIn(f.svc.endpointList(), f.eps))
			return err
		}
		keep = append(keep, ep)
	}
	f.eps = keep
	// The server must know the new subscriptions before the old ones go,
	// or a request in between would find no responder.
	f.flushInterest(ctx)
	// Bounded: with NATS unreachable a drain may not finish; prev then
	// retires anyway and a late message for a dropped phase gets a 503.
	dctx, cancel := context.WithTimeout(ctx, drainEndpointsTimeout)
	if err := f.svc.removeEndpoints(dctx, drop); err != nil {
		f.log.Warn("platform: drain replaced endpoints", "err", err)
	}
	cancel()
	f.route.Store(&route{cur: v})
	if prev != nil {
		prev.retire()
	}
	return nil
}

// drainEndpointsTimeout bounds the drain of the endpoints a new version
// no longer has.
const drainEndpointsTimeout = 30 * time.Second

// flushInterest waits until the server has processed the subscriptions
// made so far: once it returns, requests reach them.
func (f *function) flushInterest(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := f.node.nc.FlushWithContext(ctx); err != nil {
		f.log.Warn("platform: flush subscriptions", "err", err)
	}
}

// unload stops serving: the service leaves discovery, its endpoints drain
// (delivered messages still run), then the version retires.
func (f *function) unload(ctx context.Context) {
	f.opMu.Lock()
	defer f.opMu.Unlock()
	if f.svc != nil {
		dctx, cancel := context.WithTimeout(ctx, drainEndpointsTimeout)
		if err := f.svc.stop(dctx); err != nil {
			f.log.Warn("platform: drain endpoints", "err", err)
		}
		cancel()
		f.svc, f.eps = nil, nil
	}
	if rt := f.route.Swap(nil); rt != nil {
		rt.cur.retire()
		if rt.prev != nil {
			rt.prev.retire()
		}
		f.log.Info("platform: function deleted; stopped serving", "version", rt.cur.rec.Version)
	}
	f.mu.Lock()
	f.loadErr = loadError{}
	f.mu.Unlock()
	f.node.metrics.forget(f.name)
}

// ident is the service identity for version v.
func (f *function) ident(v *version) serviceIdent {
	if v == nil {
		return serviceIdent{version: "0.0.0"}
	}
	n := f.node
	return serviceIdent{
		version:     semver(v.rec.Version),
		description: v.rec.Description,
		metadata: map[string]string{
			MetaPlatform:          "nylon",
			MetaNodeID:            n.cfg.NodeID,
			MetaEnv:               n.cfg.Env,
			MetaSHA256:            v.rec.SHA256,
			MetaDeploymentVersion: strconv.FormatUint(v.rec.Version, 10),
			MetaPhases:            joinNames(v.phases.Names()),
		},
	}
}

// Metadata keys of every function's micro service.
const (
	MetaPlatform          = "platform"           // always "nylon"
	MetaNodeID            = "node_id"            // Config.NodeID
	MetaEnv               = "env"                // Config.Env
	MetaSHA256            = "sha256"             // the module's digest
	MetaDeploymentVersion = "deployment_version" // the registry version number
	MetaPhases            = "phases"             // comma-separated phase names
)

// semver is the micro service version of deployment version v: "1.0.v", a
// valid semantic version that sorts like the deployment numbers.
func semver(v uint64) string { return "1.0." + strconv.FormatUint(v, 10) }

// servedPhases lists the phases a module's endpoints serve: its HTTP phases
// in run order, then WebSocket events.
func servedPhases(s protocol.PhaseSet) []protocol.Phase {
	ps := s.Phases()
	if s.WebSocket() {
		ps = append(ps, protocol.PhaseEvent)
	}
	return ps
}

func hasEndpoint(eps []*endpoint, p protocol.Phase) bool {
	for _, ep := range eps {
		if ep.phase == p {
			return true
		}
	}
	return false
}

func endpointsNotIn(all, known []*endpoint) []*endpoint {
	var out []*endpoint
	for _, ep := range all {
		found := false
		for _, k := range known {
			if k == ep {
				found = true
				break
			}
		}
		if !found {
			out = append(out, ep)
		}
	}
	return out
}

func joinNames(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ","
		}
		out += n
	}
	return out
}
