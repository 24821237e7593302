package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost/internal/abi"
)

// Module is one function's compiled module and its pool of instances. Calls
// are safe from any number of goroutines: each gets an instance of its own,
// waiting for one when all MaxWorkers are busy.
type Module struct {
	host     *Host
	name     string
	compiled wazero.CompiledModule
	info     Info
	limits   Limits
	logger   *slog.Logger // carries function=name
	limiter  *abi.Limiter
	pool     *pool

	created, discarded, reclaimed, calls, traps, timeouts, memoryLimits atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// Result is what one call of a handler produced.
type Result struct {
	// Action is the handler's verdict (its nylon_handle result).
	Action protocol.Action
	// Ops are the handler's writes in order. They are freshly allocated and
	// owned by the caller.
	Ops []protocol.Op
	// Error is the text the handler wrote with method 4, if any: its last
	// one, cut to MaxErrorText bytes.
	Error string
}

// PoolStats is a snapshot of a module's instance pool.
type PoolStats struct {
	Live    int // instances in existence
	Idle    int // instances waiting for a call
	InUse   int // instances in a call
	Waiting int // callers waiting for an instance

	Created      uint64 // instances ever created
	Discarded    uint64 // instances thrown away after a failed call
	Reclaimed    uint64 // idle instances closed (Config.WithIdleTimeout)
	Calls        uint64 // calls that ran on an instance
	Traps        uint64 // calls that trapped, exited or returned a bad action
	Timeouts     uint64 // calls stopped at their deadline
	MemoryLimits uint64 // calls that hit the memory limit
}

func newModule(h *Host, name string, cm wazero.CompiledModule, info Info, limits Limits) *Module {
	fn := name
	if fn == "" {
		fn = "(validate)"
	}
	return &Module{
		host:     h,
		name:     name,
		compiled: cm,
		info:     info,
		limits:   limits,
		logger:   h.logger.With(slog.String("function", fn)),
		limiter:  abi.NewLimiter(h.cfg.logRate, h.cfg.logBurst),
		pool:     newPool(limits.MaxWorkers),
	}
}

// start creates the first instance, asks it for its phases and keeps it
// idle for the first call.
func (m *Module) start(ctx context.Context) error {
	inst, err := m.newInstance(ctx)
	if err != nil {
		return err
	}
	set, err := m.phases(ctx, inst)
	if err != nil {
		inst.close()
		return err
	}
	m.info.Phases = set
	if err := m.pool.acquire(ctx); err != nil {
		inst.close()
		return err
	}
	if err := m.pool.add(inst); err != nil {
		m.pool.release()
		inst.close()
		return err
	}
	m.created.Add(1)
	m.pool.put(inst, true)
	return nil
}

// Name returns the function's name.
func (m *Module) Name() string { return m.name }

// Phases returns the phases the module handles.
func (m *Module) Phases() protocol.PhaseSet { return m.info.Phases }

// Info returns what validation found out about the module.
func (m *Module) Info() Info { return m.info }

// Limits returns the limits in force, defaults filled in.
func (m *Module) Limits() Limits { return m.limits }

// Warm creates instances until n (at most MaxWorkers) exist, so the first
// calls after a deploy do not pay for instantiation (a few milliseconds for
// a Go guest).
func (m *Module) Warm(ctx context.Context, n int) error {
	n = min(n, m.limits.MaxWorkers)
	var held []*instance
	defer func() {
		for _, inst := range held {
			m.put(inst, true)
		}
	}()
	for {
		if live, _ := m.pool.counts(); live >= n {
			return nil
		}
		inst, err := m.get(ctx)
		if err != nil {
			return fmt.Errorf("function[%s]: warm: %w", m.name, err)
		}
		held = append(held, inst)
		if len(held) >= n {
			return nil
		}
	}
}

// Call runs the handler for phase (with event, 0 for HTTP phases or a
// protocol.EventWS* number for PhaseEvent) on inv, waiting for a free
// instance until ctx is done. reqID is what the guest reads as the request
// id. The call is stopped at Limits.Timeout or when ctx is done.
//
// A handler that returns normally yields a Result, even with action Error.
// Failures return an error and a zero Result: *TrapError, or an error
// wrapping ErrTimeout, ErrMemoryLimit, ErrInputTooLarge, ErrUnsupportedPhase,
// ErrPoolExhausted, ErrPoolClosed, ErrABI (an action out of range) or ctx's
// error. After any failure that reached the guest (trap, timeout, memory
// limit, cancellation, bad action) the instance is discarded and the next
// call gets a fresh one.
func (m *Module) Call(ctx context.Context, phase protocol.Phase, event uint32, inv *protocol.Invocation, reqID protocol.RequestID) (Result, error) {
	if err := m.checkCall(phase, event); err != nil {
		return Result{}, err
	}
	if inv == nil {
		inv = &protocol.Invocation{}
	} else if n := InvocationSize(inv); n > m.limits.MaxInput {
		return Result{}, fmt.Errorf("function[%s] phase[%s]: %w: %d bytes, limit %d", m.name, phase, ErrInputTooLarge, n, m.limits.MaxInput)
	}
	inst, err := m.get(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("function[%s] phase[%s]: %w", m.name, phase, err)
	}
	res, healthy, err := m.run(ctx, inst, phase, event, inv, reqID)
	m.put(inst, healthy)
	return res, err
}

func (m *Module) checkCall(phase protocol.Phase, event uint32) error {
	if !m.info.Phases.Has(phase) {
		return fmt.Errorf("function[%s]: %w: %s (module handles %v)", m.name, ErrUnsupportedPhase, phase, m.info.Phases.Names())
	}
	if phase == protocol.PhaseEvent {
		if event < protocol.EventWSOpen || event > protocol.EventWSClose {
			return fmt.Errorf("function[%s]: %w: event %d, want 350-353", m.name, ErrUnsupportedPhase, event)
		}
	} else if event != 0 {
		return fmt.Errorf("function[%s]: %w: event %d in phase %s, want 0", m.name, ErrUnsupportedPhase, event, phase)
	}
	return nil
}

// get checks out an instance, creating one if none is idle.
func (m *Module) get(ctx context.Context) (*instance, error) {
	if err := m.pool.acquire(ctx); err != nil {
		return nil, err
	}
	inst, ok, err := m.pool.take()
	if err != nil {
		m.pool.release()
		return nil, err
	}
	if !ok {
		if inst, err = m.newInstance(ctx); err != nil {
			m.pool.release()
			return nil, err
		}
		if err := m.pool.add(inst); err != nil {
			m.pool.release()
			inst.close()
			return nil, err
		}
		m.created.Add(1)
	}
	if !inst.busy.CompareAndSwap(false, true) {
		// The pool never does this; refusing is cheaper than debugging a
		// guest whose memory two calls scribbled on.
		m.pool.release()
		return nil, errors.New("wasmhost: internal error: instance handed out twice")
	}
	return inst, nil
}

// put returns an instance to the pool, closing it if it is unhealthy.
func (m *Module) put(inst *instance, healthy bool) {
	inst.busy.Store(false)
	if m.pool.put(inst, healthy) {
		inst.close()
		m.discarded.Add(1)
	}
}

// run makes one call on inst. healthy is false when the instance must not be
// used again.
func (m *Module) run(ctx context.Context, inst *instance, phase protocol.Phase, event uint32, inv *protocol.Invocation, reqID protocol.RequestID) (res Result, healthy bool, err error) {
	m.calls.Add(1)
	st := inst.state
	st.Begin(phase, event, inv, reqID, m.limits.MaxOutput)
	defer st.Reset()

	// The instance's own context stops the call (see instance.ctx): the
	// timer at the deadline, and, for a caller that can give up, an
	// AfterFunc on its context — the only per-call allocation here, and
	// none for a context that is never done.
	inst.timer.Reset(m.limits.Timeout)
	var stopWatch func() bool
	if ctx.Done() != nil {
		stopWatch = context.AfterFunc(ctx, func() { inst.cancel(context.Cause(ctx)) })
	}
	inst.stack[0] = uint64(phase)
	inst.stack[1] = uint64(event)
	err = inst.handle.CallWithStack(inst.ctx, inst.stack[:])
	// Stop reports false once the timer has fired: the instance's context is
	// (or is about to be) cancelled, so it cannot serve another call even if
	// this one finished in time. The same holds for the caller's watch.
	timedOut := !inst.timer.Stop()
	abandoned := stopWatch != nil && !stopWatch()
	inst.stdout.Flush()
	inst.stderr.Flush()

	if err != nil {
		return Result{}, false, m.callError(ctx, phase, inst, timedOut, err)
	}
	// A guest that coped with a refused memory.grow finished, but is at its
	// limit: replace it rather than run the next call on it.
	healthy = !inst.mem.refused.Load() && !timedOut && !abandoned
	action := int32(uint32(inst.stack[0]))
	if action < int32(protocol.ActionNext) || action > int32(protocol.ActionError) {
		// Not a trap, but a guest answering garbage may be in any state:
		// like every failed call, it costs the instance.
		m.traps.Add(1)
		return Result{}, false, fmt.Errorf("function[%s] phase[%s]: %w: %s returned %d, want 0 (Next), 1 (End) or 2 (Error)",
			m.name, phase, ErrABI, exportHandle, action)
	}
	ops, errText := st.Finish()
	return Result{Action: protocol.Action(action), Ops: ops, Error: errText}, healthy, nil
}

// callError classifies a failed call and counts it.
func (m *Module) callError(ctx context.Context, phase protocol.Phase, inst *instance, timedOut bool, err error) error {
	switch {
	case inst.mem.refused.Load():
		m.memoryLimits.Add(1)
		return fmt.Errorf("function[%s] phase[%s]: %w (%d MiB): %w", m.name, phase, ErrMemoryLimit, m.limits.MemoryMB, err)
	case ctx.Err() != nil:
		// The caller gave up (or its own deadline came first): wazero closed
		// the instance on the way out.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			m.timeouts.Add(1)
			return fmt.Errorf("function[%s] phase[%s]: %w: caller's deadline: %w", m.name, phase, ErrTimeout, context.Cause(ctx))
		}
		return fmt.Errorf("function[%s] phase[%s]: %w", m.name, phase, context.Cause(ctx))
	case timedOut:
		m.timeouts.Add(1)
		return fmt.Errorf("function[%s] phase[%s]: %w after %v", m.name, phase, ErrTimeout, m.limits.Timeout)
	case m.pool.isClosed():
		// Module.Close stopped the call (a drain that ran out of time): the
		// node's doing, not the guest's.
		return fmt.Errorf("function[%s] phase[%s]: %w: call stopped: %w", m.name, phase, ErrPoolClosed, err)
	}
	m.traps.Add(1)
	return &TrapError{Function: m.name, Phase: phase, Err: err}
}

// reclaimIdle closes the instances no call has used since its previous
// run, keeping one: the host runs it every idle timeout. An instance
// closed here may outlive the module's Close by a moment, which wazero
// allows.
func (m *Module) reclaimIdle() {
	insts := m.pool.reclaim(1)
	for _, inst := range insts {
		inst.close()
	}
	if len(insts) > 0 {
		m.reclaimed.Add(uint64(len(insts)))
		m.logger.Debug("wasmhost: closed idle instances", "closed", len(insts), "left", m.Stats().Live)
	}
}

// Stats returns a snapshot of the pool.
func (m *Module) Stats() PoolStats {
	live, idle := m.pool.counts()
	return PoolStats{
		Live:         live,
		Idle:         idle,
		InUse:        live - idle,
		Waiting:      int(m.pool.waiting.Load()),
		Created:      m.created.Load(),
		Discarded:    m.discarded.Load(),
		Reclaimed:    m.reclaimed.Load(),
		Calls:        m.calls.Load(),
		Traps:        m.traps.Load(),
		Timeouts:     m.timeouts.Load(),
		MemoryLimits: m.memoryLimits.Load(),
	}
}

// Close stops new calls (they fail with ErrPoolClosed), waits for running
// ones until ctx is done, stops any still running, and frees the instances
// and the compiled code. It is safe to call more than once.
func (m *Module) Close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		err := m.pool.close(ctx)
		if cerr := m.compiled.Close(ctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if err != nil {
			m.closeErr = fmt.Errorf("function[%s]: close: %w", m.name, err)
		}
		m.host.forget(m)
	})
	return m.closeErr
}

// InvocationSize is the size MaxInput is checked against: the bytes of
// every string and body in inv plus 2 per header and pair (the separators
// of list reads), a close match for its msgpack encoding.
func InvocationSize(inv *protocol.Invocation) int {
	r := &inv.Request
	n := len(r.Method) + len(r.Scheme) + len(r.Host) + len(r.Path) + len(r.Query) + len(r.ClientIP) + len(r.Body)
	n += headersSize(r.Headers) + pairsSize(r.Params) + pairsSize(inv.Config)
	if resp := inv.Response; resp != nil {
		n += len(resp.Body) + len(resp.Error) + headersSize(resp.Headers)
	}
	if ws := inv.WS; ws != nil {
		n += len(ws.ConnectionID) + len(ws.Payload) + len(ws.CloseReason)
	}
	return n
}

func headersSize(hs []protocol.Header) int {
	n := 0
	for _, h := range hs {
		n += len(h.Name) + len(h.Value) + 2
	}
	return n
}

func pairsSize(kvs []protocol.KV) int {
	n := 0
	for _, kv := range kvs {
		n += len(kv.Key) + len(kv.Value) + 2
	}
	return n
}
