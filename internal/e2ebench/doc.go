// Package e2ebench holds the end-to-end benchmark of the whole stack: an
// HTTP client calls the gateway, which calls the hello wasm function served
// by a platform node over an embedded NATS server, all in one process. The
// package has no API; its benchmarks are in bench_test.go and their figures
// in docs/BENCHMARKS.md ("end to end: gateway -> node -> wasm").
//
// BenchmarkGatewayHello is measured next to BenchmarkPlainHTTPHello, a
// net/http handler writing the same JSON, in the same run, so that the
// cost of the stack can be read against what the machine does for a plain
// HTTP round trip at that moment. The node alone (NATS request straight to
// the function, next to a native nats.go micro echo) is measured by
// BenchmarkNode in platform/bench_test.go.
//
// # Example
//
// From the repository root:
//
//	go test ./internal/e2ebench -run XXX -bench . -benchmem -benchtime 3s
package e2ebench
