// Package e2ebench holds the end-to-end benchmark of the whole stack: an
// HTTP client calls the gateway, which calls the hello wasm function served
// by a platform node over an embedded NATS server, all in one process (the
// client optionally in a second one). The
// package has no API; its benchmarks are in bench_test.go and their figures
// in docs/BENCHMARKS.md ("end to end: gateway -> node -> wasm").
//
// BenchmarkGatewayHello is measured next to BenchmarkPlainHTTPHello, a
// net/http handler writing the same JSON, in the same run, so that the
// cost of the stack can be read against what the machine does for a plain
// HTTP round trip at that moment. Both are driven by the same load
// generator, internal/loadgen (the one `nylon bench` runs): persistent
// HTTP/1.1 connections, one request in flight on each, a pre-encoded request
// and an in-place response parser that checks the status and the exact body
// of every response, as wrk-class tools do; it allocates nothing per
// request, so allocs/op are the server side's, while cpu-µs/req (the whole
// process) includes the generator's own ~15 µs per request. The
// conc=32-loadgen-process rows run the generator in a child process (this
// test binary again, loadproc_test.go), so that server-cpu-µs/req is the
// server side alone. Two wirings of the gateway's stack are measured: nats=inprocess
// (nylon serve's: one in-process connection) and nats=tcp (a connection per
// component). The node alone (NATS request straight to the function, next to
// a native nats.go micro echo) is measured by BenchmarkNode in
// platform/bench_test.go.
//
// # Example
//
// From the repository root:
//
//	go test ./internal/e2ebench -run XXX -bench . -benchmem -benchtime 3s
package e2ebench
