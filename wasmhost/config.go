package wasmhost

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/nylon-functions/nylon/wasmhost/internal/abi"
)

// Limits bound what one function may use. A zero field means "the host's
// default" (Config.WithDefaultLimits, else DefaultLimits).
type Limits struct {
	// Timeout caps one nylon_handle call. Default 1s.
	Timeout time.Duration
	// MemoryMB caps each instance's linear memory, in MiB (1..4096).
	// Default 128.
	MemoryMB uint32
	// MaxWorkers caps the instances, hence the concurrent calls, of the
	// function on this host. Default GOMAXPROCS.
	MaxWorkers int
	// MaxInput caps the size of an invocation (the sum of its strings and
	// bodies plus a small overhead per header and pair). Default 1 MiB.
	MaxInput int
	// MaxOutput caps the bytes a call's ops may hold (keys and values, and
	// 16 bytes per op). The error text is outside it: it has MaxErrorText
	// of its own. Default 1 MiB.
	MaxOutput int
}

// Built-in defaults.
const (
	DefaultTimeout   = time.Second
	DefaultMemoryMB  = 128
	DefaultMaxInput  = 1 << 20
	DefaultMaxOutput = 1 << 20

	// MaxErrorText bounds the error text a call may write (method 4),
	// outside MaxOutput, so that a handler that filled its output can still
	// say why it fails. A longer text is cut to it (on a rune boundary,
	// ending "…"), not refused.
	MaxErrorText = abi.MaxErrorText

	// MaxMemoryMB is all a 32-bit wasm memory can address.
	MaxMemoryMB = 4096
	// maxWorkersLimit bounds MaxWorkers to something a node can hold.
	maxWorkersLimit = 1 << 16
)

// DefaultLimits returns the built-in defaults: 1s, 128 MiB, GOMAXPROCS
// workers, 1 MiB in and out.
func DefaultLimits() Limits {
	return Limits{
		Timeout:    DefaultTimeout,
		MemoryMB:   DefaultMemoryMB,
		MaxWorkers: runtime.GOMAXPROCS(0),
		MaxInput:   DefaultMaxInput,
		MaxOutput:  DefaultMaxOutput,
	}
}

// Or returns l with every zero field taken from d.
func (l Limits) Or(d Limits) Limits {
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.MemoryMB == 0 {
		l.MemoryMB = d.MemoryMB
	}
	if l.MaxWorkers == 0 {
		l.MaxWorkers = d.MaxWorkers
	}
	if l.MaxInput == 0 {
		l.MaxInput = d.MaxInput
	}
	if l.MaxOutput == 0 {
		l.MaxOutput = d.MaxOutput
	}
	return l
}

// Validate reports the first field out of range, wrapping ErrInvalidConfig.
// Zero fields are valid (they mean "default").
func (l Limits) Validate() error {
	switch {
	case l.Timeout < 0:
		return fmt.Errorf("%w: limits.timeout %v is negative", ErrInvalidConfig, l.Timeout)
	case l.MemoryMB > MaxMemoryMB:
		return fmt.Errorf("%w: limits.memory %d MiB is over the wasm32 maximum of %d MiB", ErrInvalidConfig, l.MemoryMB, MaxMemoryMB)
	case l.MaxWorkers < 0 || l.MaxWorkers > maxWorkersLimit:
		return fmt.Errorf("%w: limits.max_workers %d is outside 1..%d", ErrInvalidConfig, l.MaxWorkers, maxWorkersLimit)
	case l.MaxInput < 0:
		return fmt.Errorf("%w: limits.max_input %d is negative", ErrInvalidConfig, l.MaxInput)
	case l.MaxOutput < 0:
		return fmt.Errorf("%w: limits.max_output %d is negative", ErrInvalidConfig, l.MaxOutput)
	}
	return nil
}

// Config configures a Host. The zero value is ready to use; each With*
// method returns a modified copy, so a shared base Config is safe to derive
// from concurrently. Values are checked once, by New.
//
//	cfg := wasmhost.Config{}.
//		WithCompilationCacheDir("data/wazero").
//		WithLogger(logger).
//		WithDefaultLimits(wasmhost.Limits{Timeout: 500 * time.Millisecond})
//	host, err := wasmhost.New(ctx, cfg)
type Config struct {
	cacheDir    string
	cacheMax    int64
	cacheMaxSet bool
	logger      *slog.Logger
	limits      Limits
	logRate     float64
	logBurst    int
	logRateSet  bool
	initTimeout time.Duration
	idleTimeout time.Duration
}

// WithCompilationCacheDir keeps compiled machine code in dir (created if
// missing), so a restarted node loads its modules without compiling them
// again. Default: no on-disk cache.
func (c Config) WithCompilationCacheDir(dir string) Config {
	c.cacheDir = dir
	return c
}

// WithCompilationCacheMaxBytes bounds the files under the compilation cache
// directory to n bytes: wazero never deletes an entry, and a node keeps
// the machine code of every module it ever compiled (about 11 MiB for a Go
// guest) until the disk is full. The host trims the directory when it
// starts and after each compile that finds it over n, deleting the least
// recently used files first (by access time where the mount keeps it,
// else by modification time) down to 90% of n (so not every new module
// triggers a trim). Default DefaultCompilationCacheMaxBytes; 0: no bound.
// Without WithCompilationCacheDir it has no effect.
//
// # Notes
//
//   - A module whose file was deleted keeps running (its machine code is in
//     memory); it is compiled again, and its file written again, the next
//     time a host loads it without it.
//   - A *.tmp file (an entry wazero is writing) younger than 10 minutes is
//     never deleted; an older one is the leftover of a crash and is deleted
//     at the next trim.
//   - Directories are never deleted, and symbolic links are neither
//     followed nor counted.
func (c Config) WithCompilationCacheMaxBytes(n int64) Config {
	c.cacheMax, c.cacheMaxSet = n, true
	return c
}

// WithLogger sets where the host logs, including every guest's log records
// and output lines (with attribute function=name). Default slog.Default().
func (c Config) WithLogger(l *slog.Logger) Config {
	c.logger = l
	return c
}

// WithDefaultLimits sets the limits applied where a Compile call leaves a
// field zero. Its own zero fields fall back to DefaultLimits.
func (c Config) WithDefaultLimits(l Limits) Config {
	c.limits = l
	return c
}

// WithGuestLogRate limits the log records and output lines of each function
// (all its instances together) to perSecond on average, burst at once. The
// excess is dropped and counted in a warning. Default 50 per second, burst
// 100. perSecond 0 silences guests.
func (c Config) WithGuestLogRate(perSecond float64, burst int) Config {
	c.logRate, c.logBurst, c.logRateSet = perSecond, burst, true
	return c
}

// WithInitTimeout caps an instance's start-up (_initialize and, on Compile
// and Validate, nylon_phases). Default 10s.
func (c Config) WithInitTimeout(d time.Duration) Config {
	c.initTimeout = d
	return c
}

// WithIdleTimeout makes the host close the instances of a module that no
// call has used for d to 2d, keeping at least one per module: after a
// burst a module keeps up to MaxWorkers instances (a few MiB each for a Go
// guest), and a node with many functions would otherwise hold every burst's
// worth of them for good. The next burst creates instances again
// (milliseconds each). Default DefaultIdleTimeout; negative keeps every
// instance until its module closes.
func (c Config) WithIdleTimeout(d time.Duration) Config {
	c.idleTimeout = d
	return c
}

// Defaults of the guest log limiter, start-up and idle instances.
const (
	DefaultGuestLogRate  = 50
	DefaultGuestLogBurst = 100
	DefaultInitTimeout   = 10 * time.Second
	DefaultIdleTimeout   = time.Minute

	// DefaultCompilationCacheMaxBytes bounds the on-disk compilation
	// cache: about 180 distinct Go guests.
	DefaultCompilationCacheMaxBytes int64 = 2 << 30
)

// resolved returns c with defaults filled in, or the first invalid setting.
func (c Config) resolved() (Config, error) {
	if err := c.limits.Validate(); err != nil {
		return c, err
	}
	c.limits = c.limits.Or(DefaultLimits())
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if !c.logRateSet {
		c.logRate, c.logBurst = DefaultGuestLogRate, DefaultGuestLogBurst
	}
	if c.logRate < 0 || c.logBurst < 0 {
		return c, fmt.Errorf("%w: guest_log_rate %v/s burst %d is negative", ErrInvalidConfig, c.logRate, c.logBurst)
	}
	if c.initTimeout < 0 {
		return c, fmt.Errorf("%w: init_timeout %v is negative", ErrInvalidConfig, c.initTimeout)
	}
	if c.initTimeout == 0 {
		c.initTimeout = DefaultInitTimeout
	}
	if c.idleTimeout == 0 {
		c.idleTimeout = DefaultIdleTimeout
	}
	if c.cacheMax < 0 {
		return c, fmt.Errorf("%w: compilation_cache_max_bytes %d is negative (0: no bound)", ErrInvalidConfig, c.cacheMax)
	}
	if !c.cacheMaxSet {
		c.cacheMax = DefaultCompilationCacheMaxBytes
	}
	return c, nil
}
