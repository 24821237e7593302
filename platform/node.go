package platform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/logsample"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Node serves every active function of the registry as a NATS micro
// service. Create one with NewNode, then Start it; Drain stops it.
type Node struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	reg     *registry.Registry
	host    *wasmhost.Host
	ownHost bool
	promReg prometheus.Registerer
	metrics *metrics
	// sampler bounds the per-request WARN and ERROR lines (a guest that
	// traps or times out on every request): a few a second per subject,
	// and a count of the rest (logsample).
	sampler *logsample.Sampler

	jobs    sync.Pool // *job
	replies sync.Pool // *replyMsg

	// ctx bounds loads and the watch; cancelled when Drain begins.
	ctx     context.Context
	cancel  context.CancelFunc
	loaders sync.WaitGroup
	// loadSlots holds a token per version being fetched, compiled and
	// started (Config.MaxConcurrentLoads).
	loadSlots chan struct{}

	mu        sync.Mutex
	state     nodeState
	functions map[string]*function
	watching  bool
	watchDone chan struct{}
	ready     chan struct{}

	drainOnce sync.Once
	drainErr  error
	done      chan struct{}
}

// nodeState is where a node is in its life.
type nodeState uint8

const (
	stateNew nodeState = iota
	stateStarting
	stateServing
	stateDraining
	stateStopped
)

func (s nodeState) String() string {
	return [...]string{"new", "starting", "serving", "draining", "stopped"}[s]
}

// Errors of Node's lifecycle.
var (
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("node already started")
	// ErrDrained is returned by Start after Drain.
	ErrDrained = errors.New("node drained")
)

// NewNode validates cfg and returns a node that is not yet serving.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("platform: new node: %w", err)
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:       cfg,
		log:       cfg.Logger.With("node", cfg.NodeID),
		nc:        cfg.NATS,
		reg:       cfg.Registry,
		host:      cfg.Host,
		functions: make(map[string]*function),
		loadSlots: make(chan struct{}, cfg.MaxConcurrentLoads),
		watchDone: make(chan struct{}),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
	}
	// A nil *prometheus.Registry must not become a non-nil interface.
	if cfg.Metrics != nil {
		n.promReg = cfg.Metrics
	} else {
		n.promReg = prometheus.NewRegistry()
	}
	n.sampler = logsample.New(n.log, logsample.Config{})
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// ID returns the node's id (Config.NodeID or the generated one).
func (n *Node) ID() string { return n.cfg.NodeID }

// Start registers the metrics, starts watching the registry and returns
// once every function active at that moment has been loaded (or has failed
// to load: see Health). Later deploys, rollbacks and deletes are applied in
// the background. ctx bounds only the start; the node serves until Drain.
// If Start fails, call Drain to release what it set up.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	switch n.state {
	case stateNew:
	case stateDraining, stateStopped:
		n.mu.Unlock()
		return ErrDrained
	default:
		n.mu.Unlock()
		return ErrStarted
	}
	n.state = stateStarting
	n.mu.Unlock()

	if n.host == nil {
		hc := wasmhost.Config{}.WithLogger(n.cfg.Logger)
		if n.cfg.CompilationCacheDir != "" {
			hc = hc.WithCompilationCacheDir(n.cfg.CompilationCacheDir)
		}
		host, err := wasmhost.New(ctx, hc)
		if err != nil {
			return fmt.Errorf("platform: start node: %w", err)
		}
		n.host, n.ownHost = host, true
	}
	m, err := newMetrics(n.promReg, n)
	if err != nil {
		return fmt.Errorf("platform: start node: %w", err)
	}
	n.metrics = m

	w, err := n.reg.Watch(n.ctx)
	if err != nil {
		return fmt.Errorf("platform: start node: %w", err)
	}
	n.mu.Lock()
	n.watching = true
	n.mu.Unlock()
	go n.watch(w)

	select {
	case <-n.ready:
	case <-ctx.Done():
		return fmt.Errorf("platform: start node: waiting for the initial functions: %w", ctx.Err())
	case <-n.watchDone:
		return fmt.Errorf("platform: start node: registry watch ended before the initial functions arrived")
	}
	n.mu.Lock()
	if n.state == stateStarting {
		n.state = stateServing
	}
	n.mu.Unlock()
	n.log.Info("platform: node serving", "env", n.cfg.Env, "prefix", n.cfg.SubjectPrefix, "functions", len(n.functionList()))
	return nil
}

// watch applies registry events until the watch ends, which it does only
// when the node's context ends (the registry's Watcher reopens a KV watch
// that failed underneath it and sends what was missed).
func (n *Node) watch(w *registry.Watcher) {
	defer close(n.watchDone)
	defer w.Stop()
	for ev := range w.Updates() {
		switch ev.Type {
		case registry.EventPut:
			n.apply(ev.Name, change{rec: ev.Record})
		case registry.EventDelete:
			n.apply(ev.Name, change{delete: true})
		case registry.EventReady:
			go n.awaitInitial()
		}
	}
}

// awaitInitial closes ready once every function known at EventReady has
// applied its first change.
func (n *Node) awaitInitial() {
	for _, f := range n.functionList() {
		select {
		case <-f.firstDone:
		case <-n.ctx.Done():
		}
	}
	close(n.ready)
}

// apply hands ch to function name's loader, creating the function if needed.
func (n *Node) apply(name string, ch change) {
	for {
		n.mu.Lock()
		f := n.functions[name]
		if f == nil {
			if ch.delete {
				n.mu.Unlock()
				return
			}
			f = newFunction(n, name)
			n.functions[name] = f
		}
		n.mu.Unlock()
		if f.enqueue(ch) {
			return
		}
		// f was removed after a delete: the next round creates a new one.
	}
}

// loadSlot waits for a turn to load a version, until ctx ends. The
// returned func ends the turn.
func (n *Node) loadSlot(ctx context.Context) (release func(), err error) {
	select {
	case n.loadSlots <- struct{}{}:
		return func() { <-n.loadSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// removeIfIdle removes a deleted function from the node unless a change
// arrived meanwhile; it then also ends the function's loader bookkeeping.
func (n *Node) removeIfIdle(f *function) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending != nil {
		return false
	}
	f.deleted, f.loading = true, false
	if n.functions[f.name] == f {
		delete(n.functions, f.name)
	}
	return true
}

// functionList returns the functions sorted by name.
func (n *Node) functionList() []*function {
	n.mu.Lock()
	fs := make([]*function, 0, len(n.functions))
	for _, f := range n.functions {
		fs = append(fs, f)
	}
	n.mu.Unlock()
	slices.SortFunc(fs, func(a, b *function) int { return strings.Compare(a.name, b.name) })
	return fs
}

// Done is closed when Drain has finished.
func (n *Node) Done() <-chan struct{} { return n.done }

// Drain stops the node gracefully: it stops watching the registry, takes
// every function out of discovery and unsubscribes its endpoints (messages
// already delivered are still admitted), waits for admitted requests to be
// answered, closes the modules and flushes the replies. ctx bounds the
// wait: when it ends, calls still running are stopped (their requests are
// answered with errors) and Drain returns ctx's error. Drain is idempotent:
// later calls wait for the first and return its result.
func (n *Node) Drain(ctx context.Context) error {
	n.drainOnce.Do(func() {
		n.drainErr = n.drain(ctx)
		close(n.done)
	})
	<-n.done
	return n.drainErr
}

func (n *Node) drain(ctx context.Context) error {
	n.mu.Lock()
	watching := n.watching
	n.state = stateDraining
	n.mu.Unlock()
	n.log.Info("platform: draining")
	start := time.Now()

	n.cancel()
	if watching {
		<-n.watchDone
	}
	n.loaders.Wait() // loads see the cancelled ctx and stop early

	var errs []error
	fs := n.functionList()
	// Stop intake everywhere first, then wait: the drains run in parallel.
	waits := make([]func(context.Context) error, 0, len(fs))
	for _, f := range fs {
		f.opMu.Lock()
		if f.svc != nil {
			waits = append(waits, f.svc.startStop())
		}
		f.opMu.Unlock()
	}
	for _, wait := range waits {
		if err := wait(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	var versions []*version
	for _, f := range fs {
		if rt := f.route.Swap(nil); rt != nil {
			versions = append(versions, rt.cur)
			if rt.prev != nil {
				versions = append(versions, rt.prev)
			}
		}
	}
	for _, v := range versions {
		v.retire()
	}
	if err := n.awaitVersions(ctx, versions); err != nil {
		errs = append(errs, err)
		n.log.Warn("platform: drain timed out; stopping the calls still running", "err", err)
		for _, v := range versions {
			v.forceClose()
		}
		force, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.awaitVersions(force, versions)
		cancel()
	}

	if n.nc.IsConnected() {
		flush, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := n.nc.FlushWithContext(flush); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("flush replies: %w", err))
		}
		cancel()
	} else if !n.nc.IsClosed() {
		// A flush cannot complete before the connection is back: the
		// replies wait in nats.go's reconnect buffer, sent if it comes
		// back before the connection is closed. Nothing the drain did
		// failed, so it reports no error (serve would exit 1 for it).
		n.log.Warn("platform: NATS is not connected; replies of the drained calls are sent only if it reconnects before the connection closes",
			"nats_status", n.nc.Status().String())
	}
	if n.ownHost && n.host != nil {
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.host.Close(hctx); err != nil {
			errs = append(errs, fmt.Errorf("close host: %w", err))
		}
		cancel()
	}
	if n.metrics != nil {
		n.metrics.unregister(n.promReg)
	}
	n.mu.Lock()
	n.state = stateStopped
	n.mu.Unlock()
	n.sampler.Flush() // the counts of lines suppressed lately
	n.log.Info("platform: drained", "duration", time.Since(start))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("platform: drain: %w", err)
	}
	return nil
}

// awaitVersions waits until every version has closed its module.
func (n *Node) awaitVersions(ctx context.Context, vs []*version) error {
	for _, v := range vs {
		select {
		case <-v.closed:
		case <-ctx.Done():
			var left int64
			for _, v := range vs {
				left += v.inflight()
			}
			return fmt.Errorf("%d requests still running: %w", left, ctx.Err())
		}
	}
	return nil
}

// defaultNodeID is the host name (sanitised) plus a random suffix.
func defaultNodeID() string {
	host, _ := os.Hostname()
	clean := make([]byte, 0, len(host))
	for i := 0; i < len(host) && len(clean) < 40; i++ {
		c := host[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			clean = append(clean, c)
		}
	}
	if len(clean) == 0 {
		clean = append(clean, "node"...)
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return string(clean) + "-" + hex.EncodeToString(b[:])
}
