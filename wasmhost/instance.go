package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost/internal/abi"
)

// maxGuestSleep caps one sleep of a guest (WASI poll_oneoff on a clock). A
// guest's runtime re-checks its timers after waking, so a longer sleep
// becomes several. A sleep also ends the moment the call, _initialize or
// nylon_phases it is in is stopped (instance.sleep, watchStart).
const maxGuestSleep = 10 * time.Millisecond

// baseModuleConfig is the sandbox every instance gets: no filesystem,
// environment or arguments (wazero's defaults), real clocks, crypto-random,
// and _initialize as the start function of a WASI reactor. Stdout, stderr
// and sleep are set per instance.
func baseModuleConfig() wazero.ModuleConfig {
	return wazero.NewModuleConfig().
		WithName(""). // anonymous: a module can have many instances in one runtime
		WithStartFunctions(exportInit).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
}

// instance is one instantiated guest. The pool hands it to one caller at a
// time.
type instance struct {
	mod    api.Module
	handle api.Function
	state  *abi.State
	mem    *linearMemory
	stdout *abi.Output
	stderr *abi.Output
	stack  [2]uint64 // nylon_handle's params, then its result
	busy   atomic.Bool

	// ctx is what every call on this instance runs under: it carries state
	// for the host functions and is cancelled, with a cause, when a call
	// overruns its deadline (timer) or its caller gives up — and wazero then
	// closes the instance. Built once per instance, it spares each call a
	// context.WithTimeout and a context.WithValue: their timer and six
	// allocations were half of a warm call's host-side cost. Cancelling it
	// costs the instance, which a timed-out or abandoned call loses anyway.
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer // armed for each call; fires cancel(errCallDeadline)
}

// errCallDeadline is the cause an instance's context is cancelled with when
// a call runs past the function's timeout.
var errCallDeadline = errors.New("wasmhost: call deadline")

// newCallContext gives inst its call context and deadline timer, disarmed.
func (inst *instance) newCallContext() {
	ctx, cancel := context.WithCancelCause(context.Background())
	inst.ctx = abi.WithState(ctx, inst.state)
	inst.cancel = cancel
	inst.timer = time.AfterFunc(time.Hour, func() { cancel(errCallDeadline) })
	inst.timer.Stop()
}

// sleep is the instance's WASI sleep, at most maxGuestSleep at a time. A
// sleeping guest runs no yield points, so the sleep itself watches the call:
// once the call is stopped it stops the call, as a yield point would,
// instead of letting the guest sleep past its deadline.
func (inst *instance) sleep(ns int64) {
	t := time.NewTimer(min(time.Duration(ns), maxGuestSleep))
	defer t.Stop()
	select {
	case <-t.C:
	case <-inst.ctx.Done():
		stopCall(inst.ctx)
	}
}

// close frees the instance. wazero's Close is idempotent and safe while a
// call runs (the call then fails), which Module.Close relies on to stop
// calls that outlive its context.
func (inst *instance) close() {
	inst.timer.Stop()
	inst.cancel(ErrPoolClosed)
	inst.stdout.Flush()
	inst.stderr.Flush()
	_ = inst.mod.Close(context.Background())
}

// linearMemory backs an instance's memory and refuses to grow past the
// function's limit. wazero's own limit (RuntimeConfig.WithMemoryLimitPages)
// is per runtime; this makes it per function. A refused grow makes
// memory.grow return -1, which a Go guest turns into a fatal "out of memory"
// exit; refused records that it happened so the call reports ErrMemoryLimit.
type linearMemory struct {
	limit   uint64
	buf     []byte
	refused atomic.Bool
}

var _ experimental.LinearMemory = (*linearMemory)(nil)

// Reallocate implements experimental.LinearMemory.
func (l *linearMemory) Reallocate(size uint64) []byte {
	if size > l.limit {
		l.refused.Store(true)
		return nil
	}
	if size <= uint64(cap(l.buf)) {
		// Bytes between len and cap were zeroed by make and never exposed
		// to the guest (memory never shrinks), so they are still zero.
		l.buf = l.buf[:size]
		return l.buf
	}
	// Grow by a quarter more than asked, like append does for big slices, so
	// a guest growing page by page does not copy its memory each time.
	newCap := min(size+size/4, l.limit)
	buf := make([]byte, size, newCap)
	copy(buf, l.buf)
	l.buf = buf
	return buf
}

// Free implements experimental.LinearMemory.
func (l *linearMemory) Free() { l.buf = nil }

// newInstance instantiates the module and runs _initialize, bounded by the
// host's init timeout.
func (m *Module) newInstance(ctx context.Context) (inst *instance, err error) {
	st := abi.NewState(m.name, m.logger, m.limiter)
	mem := &linearMemory{limit: uint64(m.limits.MemoryMB) << 20}
	stdout := abi.NewOutput(st, "stdout", slog.LevelInfo)
	stderr := abi.NewOutput(st, "stderr", slog.LevelWarn)
	// Built before instantiation: the instance's sleep watches its context.
	// Returned only once instantiated; on failure its context is released.
	built := &instance{state: st, mem: mem, stdout: stdout, stderr: stderr}
	built.newCallContext()
	defer func() {
		if err != nil {
			built.cancel(err)
		}
	}()
	cfg := m.host.modCfg.WithStdout(stdout).WithStderr(stderr).WithNanosleep(built.sleep)

	ictx := experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(
		func(_, _ uint64) experimental.LinearMemory { return mem }))
	ictx = abi.WithState(ictx, st)
	ictx, cancel := context.WithTimeout(ictx, m.host.cfg.initTimeout)
	defer cancel()
	defer func() {
		// Instantiation runs wazero code on a module an uploader wrote;
		// whatever goes wrong in there must fail this module, not the node.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: instantiate: %v", ErrABI, r)
		}
	}()

	stopWatch := watchStart(ictx, built)
	mod, err := m.host.rt.InstantiateModule(ictx, m.compiled, cfg)
	inTime := stopWatch()
	stdout.Flush()
	stderr.Flush()
	if err == nil && !inTime {
		// _initialize returned as its time ran out: the instance's context
		// is cancelled, so it could not serve a call.
		_ = mod.Close(ctx)
		err = context.Cause(ictx)
	}
	if err != nil {
		return nil, withStderr(startError(ctx, ictx, mem, m.limits, m.host.cfg.initTimeout, exportInit, err), stderr)
	}
	handle := mod.ExportedFunction(exportHandle)
	if handle == nil { // checkABI saw it; kept as a guard, not a panic
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w: missing export %q", ErrABI, exportHandle)
	}
	built.mod, built.handle = mod, handle
	return built, nil
}

// phases calls nylon_phases on a fresh instance.
func (m *Module) phases(ctx context.Context, inst *instance) (protocol.PhaseSet, error) {
	fn := inst.mod.ExportedFunction(exportPhases)
	if fn == nil {
		return 0, fmt.Errorf("%w: missing export %q", ErrABI, exportPhases)
	}
	cctx, cancel := context.WithTimeout(abi.WithState(ctx, inst.state), m.host.cfg.initTimeout)
	defer cancel()
	stopWatch := watchStart(cctx, inst)
	res, err := fn.Call(cctx)
	if !stopWatch() && err == nil {
		err = context.Cause(cctx) // the caller closes the cancelled instance
	}
	inst.stdout.Flush()
	inst.stderr.Flush()
	if err != nil {
		return 0, withStderr(startError(ctx, cctx, inst.mem, m.limits, m.host.cfg.initTimeout, exportPhases, err), inst.stderr)
	}
	set := protocol.PhaseSet(api.DecodeU32(res[0]))
	if !set.Valid() {
		return 0, fmt.Errorf("%w: %s returned %#x: want a non-empty mask of bits 1-4 (request_filter..logging) and 5 (WebSocket events)", ErrABI, exportPhases, uint32(set))
	}
	return set, nil
}

// watchStart stops a sleep of inst's guest when ctx, the deadline of its
// _initialize or nylon_phases, ends: the yield points Compile adds check ctx,
// but a guest sleeping in a loop (WASI poll_oneoff) runs a yield point only
// every million iterations, each up to maxGuestSleep long, and would outlive
// its deadline by hours, holding a validation or load slot meanwhile. The
// sleep watches the instance's own context, so ctx's end cancels that. The
// returned func stops the watch and reports false if ctx ended first: the
// instance is then cancelled and must not be used.
func watchStart(ctx context.Context, inst *instance) (stop func() bool) {
	return context.AfterFunc(ctx, func() { inst.cancel(context.Cause(ctx)) })
}

// withStderr adds to err the first line the guest wrote to stderr, the
// reason a runtime gives when it aborts (a Go guest's "panic: ..." in an
// init function): the error is what an uploader sees of a module that does
// not start, while the line itself went only to the node's log.
func withStderr(err error, stderr *abi.Output) error {
	if line := stderr.First(); line != "" {
		return fmt.Errorf("%w (guest stderr: %q)", err, line)
	}
	return err
}

// startError classifies a failure of _initialize or nylon_phases.
func startError(parent, callCtx context.Context, mem *linearMemory, limits Limits, timeout time.Duration, fn string, err error) error {
	switch {
	case mem.refused.Load():
		return fmt.Errorf("%w (%d MiB) in %s: %w", ErrMemoryLimit, limits.MemoryMB, fn, err)
	case parent.Err() != nil:
		return fmt.Errorf("%s: %w", fn, context.Cause(parent))
	case errors.Is(callCtx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %s did not finish within %v", ErrTimeout, fn, timeout)
	}
	return fmt.Errorf("%w: %s: %w", ErrABI, fn, err)
}
