package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nylon-functions/nylon/wasmhost/internal/abi"
)

// Host compiles and runs guest modules. It owns one wazero runtime (with the
// WASI and "nylon" host modules) shared by every function, and the optional
// on-disk compilation cache. It is safe for concurrent use.
//
// Closing a Host closes every Module it compiled.
type Host struct {
	cfg    Config
	logger *slog.Logger
	rt     wazero.Runtime
	cache  wazero.CompilationCache // nil without a cache dir
	modCfg wazero.ModuleConfig     // the sandbox of every instance
	wasi   map[string]api.FunctionDefinition

	// trimMu serializes trims of the compilation cache directory.
	trimMu sync.Mutex
	// compiling serializes compiles of identical bytes (wazero's file
	// cache hands a half-made module to a concurrent compile).
	compiling compileLocks

	mu      sync.Mutex
	closed  bool
	modules map[*Module]struct{}

	// The idle sweep (Config.WithIdleTimeout): stop ends it, swept is
	// closed when it has ended (at once without a sweep).
	stop, swept chan struct{}
}

// New validates cfg and starts a Host: a wazero runtime with the host
// modules guests import (nylon, nylon_sys for stopping calls, WASI) and the
// compilation cache in cfg's directory.
func New(ctx context.Context, cfg Config) (*Host, error) {
	cfg, err := cfg.resolved()
	if err != nil {
		return nil, fmt.Errorf("wasmhost: %w", err)
	}
	// Not WithCloseOnContextDone: calls are stopped by the yield points
	// Compile adds (interrupt.go), at a fraction of the cost.
	rc := wazero.NewRuntimeConfig()
	var cache wazero.CompilationCache
	if cfg.cacheDir != "" {
		cache, err = wazero.NewCompilationCacheWithDir(cfg.cacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: compilation cache %s: %w", cfg.cacheDir, err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	h := &Host{
		cfg:     cfg,
		logger:  cfg.logger,
		rt:      rt,
		cache:   cache,
		modCfg:  baseModuleConfig(),
		modules: make(map[*Module]struct{}),
	}
	// Before any compile, so a node restarted after a long run starts
	// within the bound.
	h.trimCache(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = h.closeRuntime(ctx)
		return nil, fmt.Errorf("wasmhost: wasi: %w", err)
	}
	h.wasi = rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions()
	if err := abi.Register(ctx, rt); err != nil {
		_ = h.closeRuntime(ctx)
		return nil, fmt.Errorf("wasmhost: %w", err)
	}
	if err := registerYield(ctx, rt); err != nil {
		_ = h.closeRuntime(ctx)
		return nil, fmt.Errorf("wasmhost: %w", err)
	}
	h.stop, h.swept = make(chan struct{}), make(chan struct{})
	if cfg.idleTimeout > 0 {
		go h.sweepIdle(cfg.idleTimeout)
	} else {
		close(h.swept)
	}
	return h, nil
}

// sweepIdle closes, every interval, the instances no call has used during
// the previous one (so after interval to 2 × interval unused), keeping one
// per module. One goroutine and one ticker for all the host's modules.
func (h *Host) sweepIdle(interval time.Duration) {
	defer close(h.swept)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		mods := make([]*Module, 0, len(h.modules))
		for m := range h.modules {
			mods = append(mods, m)
		}
		h.mu.Unlock()
		for _, m := range mods {
			m.reclaimIdle()
		}
	}
}

// DefaultLimits returns the limits a Compile call's zero fields take.
func (h *Host) DefaultLimits() Limits { return h.cfg.limits }

// Validate checks that wasm is a module this host can run: a wasm binary
// that compiles, follows guest ABI v1 (exports, imports and their
// signatures), initialises within the default limits and reports a valid
// phase set. The error wraps ErrNotWasm, ErrCompile, ErrABI, ErrMemoryLimit
// or ErrTimeout and says what is wrong, e.g.
//
//	guest abi v1: import "env"."foo": only "nylon" and "wasi_snapshot_preview1" imports are allowed
//
// Validate leaves nothing loaded; Compile validates too, so a node need not
// call both.
func (h *Host) Validate(ctx context.Context, wasm []byte) (Info, error) {
	m, err := h.load(ctx, "", wasm, Limits{})
	if err != nil {
		return Info{}, err
	}
	info := m.info
	if err := m.Close(ctx); err != nil {
		return info, fmt.Errorf("module: close: %w", err)
	}
	return info, nil
}

// Compile validates wasm like Validate and loads it as function name under
// limits (zero fields take the host's defaults). The returned Module already
// holds one ready instance; more are created on demand up to
// limits.MaxWorkers.
func (h *Host) Compile(ctx context.Context, name string, wasm []byte, limits Limits) (*Module, error) {
	m, err := h.load(ctx, name, wasm, limits)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = m.Close(ctx)
		return nil, fmt.Errorf("function[%s]: %w", name, ErrHostClosed)
	}
	h.modules[m] = struct{}{}
	h.mu.Unlock()
	return m, nil
}

// load compiles, checks and starts the first instance of a module that is
// not yet tracked by h. An empty name is Validate's anonymous module.
func (h *Host) load(ctx context.Context, name string, wasm []byte, limits Limits) (*Module, error) {
	wrap := func(err error) error {
		if name == "" {
			return fmt.Errorf("module: %w", err)
		}
		return fmt.Errorf("function[%s]: %w", name, err)
	}
	if err := limits.Validate(); err != nil {
		return nil, wrap(err)
	}
	limits = limits.Or(h.cfg.limits)
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, wrap(ErrHostClosed)
	}
	if err := checkHeader(wasm); err != nil {
		return nil, wrap(err)
	}
	instrumented, err := instrument(wasm)
	if err != nil {
		return nil, wrap(err)
	}
	unlock := h.compiling.lock(instrumented)
	cm, err := h.rt.CompileModule(ctx, instrumented)
	unlock()
	if err != nil {
		return nil, wrap(fmt.Errorf("%w: %w", ErrCompile, err))
	}
	// The compile may have written a new cache entry (wazero does not say
	// whether it did). A walk of a few hundred files is cheap next to a
	// compile, and a failed trim never fails the compile.
	h.trimCache(ctx)
	if err := checkABI(cm, h.wasi); err != nil {
		_ = cm.Close(ctx)
		return nil, wrap(err)
	}
	info := Info{Size: len(wasm), MemoryPages: initialPages(cm)}
	if limitPages := limits.MemoryMB * (1 << 20 / wasmPageBytes); info.MemoryPages > limitPages {
		_ = cm.Close(ctx)
		return nil, wrap(fmt.Errorf("%w: initial memory is %d pages (%s MiB), limit %d MiB",
			ErrMemoryLimit, info.MemoryPages, pagesMiB(info.MemoryPages), limits.MemoryMB))
	}
	m := newModule(h, name, cm, info, limits)
	if err := m.start(ctx); err != nil {
		_ = m.Close(ctx)
		return nil, wrap(err)
	}
	return m, nil
}

// pagesMiB renders a number of wasm pages in MiB: exactly (a page is 1/16
// MiB, so "2.5" for 40 pages), and in 64 bits, as the 65,536 pages of a
// full 4 GiB memory times the page size overflow the uint32 count.
func pagesMiB(pages uint32) string {
	return strconv.FormatFloat(float64(uint64(pages)*wasmPageBytes)/(1<<20), 'f', -1, 64)
}

// forget drops a closed module from the host's set.
func (h *Host) forget(m *Module) {
	h.mu.Lock()
	delete(h.modules, m)
	h.mu.Unlock()
}

// Close closes every module (waiting for their in-flight calls until ctx is
// done, then stopping them), the runtime and the compilation cache. It is
// safe to call more than once.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	mods := make([]*Module, 0, len(h.modules))
	for m := range h.modules {
		mods = append(mods, m)
	}
	h.mu.Unlock()
	close(h.stop)
	<-h.swept

	var errs []error
	for _, m := range mods {
		if err := m.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.closeRuntime(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (h *Host) closeRuntime(ctx context.Context) error {
	var errs []error
	if err := h.rt.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("wasmhost: close runtime: %w", err))
	}
	if h.cache != nil {
		if err := h.cache.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("wasmhost: close compilation cache: %w", err))
		}
	}
	return errors.Join(errs...)
}
