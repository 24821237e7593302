package main

import (
	"fmt"
	"math"
	"time"

	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/registry"
	"github.com/nylon-functions/nylon/wasmhost"
)

// Upper bounds of the node defaults: a deployment's own limits have the
// same (registry); maxFunctionQueue because every version of every
// function allocates a queue of that many slots.
const (
	maxFunctionTimeout = registry.MaxTimeoutMS * time.Millisecond
	maxFunctionQueue   = 1 << 20
)

// Compile cache bound of --compile-cache-max-mb: the default, and the most
// MiB whose bytes fit an int64.
const (
	defaultCompileCacheMaxMB = int(wasmhost.DefaultCompilationCacheMaxBytes >> 20)
	maxCompileCacheMB        = int64(math.MaxInt64 >> 20)
)

// functionDefaults are the node's limits for functions whose deployment
// leaves them at zero (platform.Config Timeout, MaxWorkers, MemoryMB,
// MaxBodyBytes, QueueLength). The defaults of the flags are the platform's
// own, so a serve without them runs as before.
type functionDefaults struct {
	Timeout      time.Duration
	MaxWorkers   int
	MemoryMB     int
	MaxBodyBytes int
	Queue        int
	// IdleTimeout is not a limit but the wasm host's: how long an
	// instance no call uses is kept (wasmhost.Config.WithIdleTimeout).
	IdleTimeout time.Duration
	// CompileCacheMaxMB bounds <data>/wazero-cache, in MiB
	// (wasmhost.Config.WithCompilationCacheMaxBytes); 0: no bound.
	CompileCacheMaxMB int
}

func (d *functionDefaults) register(f *flagSet) {
	f.Duration(&d.Timeout, "function-timeout", "NYLON_FUNCTION_TIMEOUT", platform.DefaultTimeout,
		"time budget of one handler call, for functions deployed without timeout_ms (1ms to 10m)")
	f.Int(&d.MaxWorkers, "function-max-workers", "n", "NYLON_FUNCTION_MAX_WORKERS", 0,
		fmt.Sprintf("concurrent calls of a function on this node, for functions deployed without max_workers (up to %d); 0: twice the CPUs, at least 4", registry.MaxWorkers))
	f.Int(&d.MemoryMB, "function-memory-mb", "mib", "NYLON_FUNCTION_MEMORY_MB", wasmhost.DefaultMemoryMB,
		fmt.Sprintf("linear memory of a function instance in MiB, for functions deployed without memory_mb (1 to %d)", registry.MaxMemoryMB))
	f.Int(&d.MaxBodyBytes, "function-max-body-bytes", "bytes", "NYLON_FUNCTION_MAX_BODY_BYTES", wasmhost.DefaultMaxInput,
		fmt.Sprintf("size of the invocation and of the output of functions deployed without max_body_bytes (1 to %d); raising it admits no larger requests: deploy with --max-body-bytes", registry.MaxBodyBytesCap))
	f.Int(&d.Queue, "function-queue", "n", "NYLON_FUNCTION_QUEUE", platform.DefaultQueueLength,
		fmt.Sprintf("requests of a function that may wait while its workers are busy; more are refused at once with 503 overloaded (1 to %d)", maxFunctionQueue))
	f.Duration(&d.IdleTimeout, "function-idle-timeout", "NYLON_FUNCTION_IDLE_TIMEOUT", wasmhost.DefaultIdleTimeout,
		"instances of a function that no call has used for this long (to twice as long) are closed, down to one per function; negative: never")
	f.Int(&d.CompileCacheMaxMB, "compile-cache-max-mb", "mib", "NYLON_COMPILE_CACHE_MAX_MB", defaultCompileCacheMaxMB,
		"bound of the compiled machine code kept in <data>/wazero-cache (about 11 MiB per distinct Go module), in MiB; the least recently used entries are deleted beyond it and recompiled at the next start that needs them; 0: no bound")
}

// validate checks the ranges a deployment's limits have (registry), so the
// node never gets a default no deployment could ask for. Zero is the
// platform's default, as in platform.Config (and in a serveConfig built
// without flags).
func (d *functionDefaults) validate() error {
	if d.Timeout < 0 || d.Timeout > 0 && d.Timeout < time.Millisecond || d.Timeout > maxFunctionTimeout {
		return fmt.Errorf("--function-timeout: %v: want 1ms to 10m (0: the default, %v)", d.Timeout, platform.DefaultTimeout)
	}
	if d.MaxWorkers < 0 || d.MaxWorkers > registry.MaxWorkers {
		return fmt.Errorf("--function-max-workers: %d: want 1 to %d (0: the default, twice the CPUs, at least 4)", d.MaxWorkers, registry.MaxWorkers)
	}
	if d.MemoryMB < 0 || d.MemoryMB > registry.MaxMemoryMB {
		return fmt.Errorf("--function-memory-mb: %d: want 1 to %d (0: the default, %d)", d.MemoryMB, registry.MaxMemoryMB, wasmhost.DefaultMemoryMB)
	}
	if d.MaxBodyBytes < 0 || d.MaxBodyBytes > registry.MaxBodyBytesCap {
		return fmt.Errorf("--function-max-body-bytes: %d: want 1 to %d (0: the default, %d)", d.MaxBodyBytes, registry.MaxBodyBytesCap, wasmhost.DefaultMaxInput)
	}
	if d.Queue < 0 || d.Queue > maxFunctionQueue {
		return fmt.Errorf("--function-queue: %d: want 1 to %d (0: the default, %d)", d.Queue, maxFunctionQueue, platform.DefaultQueueLength)
	}
	if d.CompileCacheMaxMB < 0 || int64(d.CompileCacheMaxMB) > maxCompileCacheMB {
		return fmt.Errorf("--compile-cache-max-mb: %d: want 0 (no bound) to %d", d.CompileCacheMaxMB, maxCompileCacheMB)
	}
	return nil
}

// compileCacheMaxBytes is --compile-cache-max-mb in bytes; validate keeps
// it from overflowing.
func (d *functionDefaults) compileCacheMaxBytes() int64 {
	return int64(d.CompileCacheMaxMB) << 20
}

// apply sets the node defaults of cfg.
func (d *functionDefaults) apply(cfg *platform.Config) {
	cfg.Timeout = d.Timeout
	cfg.MaxWorkers = d.MaxWorkers
	cfg.MemoryMB = d.MemoryMB
	cfg.MaxBodyBytes = int64(d.MaxBodyBytes)
	cfg.QueueLength = d.Queue
}
