// Package wasmhost runs function handlers compiled to WebAssembly: it
// validates uploads against guest ABI v1, compiles them with wazero (with an
// optional on-disk compilation cache, bounded in size: see below), keeps a
// bounded pool of initialised instances per function, and calls
// nylon_handle under a timeout and a memory limit, answering the guest's
// reads from a protocol.Invocation and collecting its writes as
// protocol.Ops.
//
// It imports protocol and wazero; the platform node imports it. The ABI glue
// (the "nylon" host functions) lives in wasmhost/internal/abi.
//
// # Guest ABI v1
//
// A guest is a WASI reactor (GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared) exporting memory, nylon_abi_v1(), nylon_phases() ->
// i32 and nylon_handle(phase, event i32) -> i32, importing only from
// "nylon" (read, write, log) and "wasi_snapshot_preview1". See DESIGN.md
// "Guest ABI v1" and the protocol package for method numbers.
//
// The host checks every write, so a guest that does not use the Go SDK
// gets the same guarantees; a refused write changes nothing and returns -1
// (not allowed in this phase), -2 (over Limits.MaxOutput) or -3 (bad
// argument) to the guest:
//
//   - Response header and status writes (100 set, 101 remove, 402 add a
//     value, 102 status) are allowed in request_filter and response_filter
//     only: in response_body_filter the gateway has already sent the
//     status and headers (-1). A header name must be an HTTP token and a
//     value free of control characters other than tab: CR, LF, NUL,
//     0x01-0x1F, 0x7F (-3; protocol.ValidHeaderValue, the rule the
//     gateway applies to any responder's ops; obs-text passes). Body ops
//     (103-106) are allowed in all three HTTP phases, request-header ops
//     (400, 401) in request_filter, WebSocket ops (301-313) in events;
//     in logging only the error text is.
//   - A WebSocket close (303) must carry a code a close frame may carry
//     (protocol.ValidCloseCode: 1000-1003, 1007-1014, 3000-4999), which
//     the edge would otherwise replace with 1000, and a reason of at most
//     123 bytes (-3).
//   - The ops of a call count their keys and values plus 16 bytes each
//     against Limits.MaxOutput. The error text (method 4) does not: it has
//     MaxErrorText (4 KiB) of its own and is never refused, a longer one
//     being cut, so a handler that filled its output can still say why it
//     fails.
//   - READ_REQUEST_QUERY_PARAM decodes like net/url.ParseQuery and skips
//     the pairs it skips (those that do not decode, and those holding a
//     ';'), so one parameter read agrees with a parse of the whole query.
//
// # Isolation
//
//   - Each instance serves one call at a time and is reused for many;
//     instantiation (a few ms for a Go guest) happens only when the pool
//     grows or replaces an instance. Instances no call has used for the idle
//     timeout (Config.WithIdleTimeout, default a minute; closed after one to
//     two timeouts) are closed, the coldest first, down to one per module,
//     by one sweep of the host's: what a burst made does not stay for good.
//   - A call is stopped at Limits.Timeout or when its context ends. Compile
//     rewrites every module (internal/yield) to call the host function
//     nylon_sys.yield after each budget of about a million instructions, bulk
//     memory and table instructions (memory.fill, memory.copy, table.init...)
//     counting by their length; that is where a call notices it must stop, and
//     where the Go scheduler can preempt it, so a spinning guest neither
//     outlives its deadline by more than a fraction of a millisecond (plus at
//     most one bulk instruction) nor holds up the garbage collector.
//     (wazero's own WithCloseOnContextDone checks at every loop iteration
//     and halved the speed of Go guests; see interrupt.go.) The module
//     "nylon_sys" is reserved: a guest may not import from it. A guest's
//     sleep (WASI poll_oneoff) ends when its call is stopped; _initialize
//     and nylon_phases are stopped the same way at the init timeout
//     (Config.WithInitTimeout), sleeping in a loop included.
//   - Unbounded recursion traps with wazero's "stack overflow" once the
//     guest's stack reaches about 80 MiB, host memory outside
//     Limits.MemoryMB that goes with the discarded instance.
//   - Memory growth past Limits.MemoryMB fails, and every pointer the guest
//     passes is bounds-checked. A module's tables hold at most 2^20 entries
//     together (8 MiB): table.grow past that fails, and a module declaring
//     more is refused with ErrMemoryLimit.
//   - An instance that trapped, timed out, hit its memory limit or was
//     cancelled is discarded; the next call gets a fresh one.
//   - No filesystem, environment, arguments or network; real clocks and
//     crypto random. Guest log records and stdout/stderr lines go to the
//     host's slog logger with function=<name>, rate-limited per function.
//
// # Compilation cache
//
// With Config.WithCompilationCacheDir, wazero writes the machine code of
// every module it compiles to the directory (about 11 MiB for a Go guest)
// and reads it back instead of compiling again, in this process or the
// next. wazero never deletes an entry, so the host bounds the directory
// (Config.WithCompilationCacheMaxBytes, default
// DefaultCompilationCacheMaxBytes = 2 GiB; 0: no bound): in New and after
// each compile, if its regular files sum to more than the bound, it
// deletes the least recently used first (access time, which a cache hit
// moves on relatime mounts; else modification time), down to 90% of it, logging
// one INFO record ("compilation cache trimmed": files, bytes_freed,
// bytes_kept). *.tmp files younger than 10 minutes (an entry being
// written) are spared; older ones, left by a crash, are deleted. A loaded
// module whose entry is deleted keeps running; it is compiled again (1-2 s
// for a Go guest) the next time a host loads it.
//
// # Example
//
//	host, err := wasmhost.New(ctx, wasmhost.Config{}.
//		WithCompilationCacheDir("data/wazero").
//		WithLogger(logger))
//	if err != nil { ... }
//	defer host.Close(ctx)
//
//	mod, err := host.Compile(ctx, "auth", wasm, wasmhost.Limits{Timeout: time.Second, MaxWorkers: 8})
//	if err != nil { ... } // errors.Is(err, wasmhost.ErrABI), ErrNotWasm, ErrCompile...
//
//	res, err := mod.Call(ctx, protocol.PhaseRequestFilter, 0, &inv, reqID)
//	switch {
//	case errors.Is(err, wasmhost.ErrTimeout), errors.Is(err, wasmhost.ErrPoolExhausted):
//		// overloaded or slow handler
//	case err != nil:
//		// *TrapError, ErrMemoryLimit, ...
//	default:
//		// res.Action, res.Ops, res.Error
//	}
package wasmhost
