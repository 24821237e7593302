// Package loadgen is the project's HTTP/1.1 load generator, used the way
// wrk or hey are used: persistent connections, each with one request in
// flight (a closed loop), for a number of requests or a duration, every
// response checked (status, optionally the exact body) and every successful
// request's latency recorded. `nylon bench` and the end-to-end benchmark
// (internal/e2ebench) both run it.
//
// The request is encoded once and written as is; the response is parsed in
// place from a bufio.Reader (status line, Content-Length or chunked bodies
// with trailers, interim 1xx responses skipped, Connection: close a
// failure), so a request costs the generator a write and a read syscall and
// no allocation on plain http://. Spec.TLS (an https:// URL) puts each
// connection on TLS, HTTP/1.1 by ALPN, with its handshake at dial; that
// path costs crypto/tls's work per request on top. No HTTP/2.
//
// A failed request (I/O error, timeout, unexpected status or body) counts
// as an error, and its connection is closed and redialed; Options.MaxErrors
// decides when a run gives up. Result.CPU is the process's CPU time over
// the measured phase (getrusage), so a generator running alone in its
// process can report its own cost per request.
//
// It imports only the standard library.
//
// # Example
//
//	spec, err := loadgen.ParseURL("http://127.0.0.1:8080/hello?name=x")
//	if err != nil {
//		return err
//	}
//	pool, err := loadgen.DialPool(ctx, spec, 32) // 32 connections, one request made on each
//	if err != nil {
//		return err
//	}
//	defer pool.Close()
//	res, err := pool.Run(ctx, loadgen.Options{Duration: 10 * time.Second, MaxErrors: -1})
//	if err != nil {
//		return err
//	}
//	fmt.Printf("%.0f req/s, p99 %v, %d errors\n", res.Summary().RPS, res.Percentile(0.99), res.Errors)
package loadgen
