package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nylon-functions/nylon/internal/loadgen"
)

// defaultBenchDuration is how long bench runs without --requests or
// --duration (wrk's default).
const defaultBenchDuration = 10 * time.Second

func benchCommand() command {
	return command{
		name:    "bench",
		summary: "load an HTTP endpoint of a running platform: req/s, latency percentiles, the generator's own CPU",
		help: `bench is a closed-loop HTTP/1.1 load generator, used the way hey or wrk are: each
of --concurrency persistent connections has one request in flight, for --requests
requests or --duration. Each connection makes one request before the clock starts
(a wrong URL or expectation fails there, with the reason). Every response must
have --expect-status (and --expect-body, if given); any other answer, an I/O
error or a timeout is an error, and that connection is redialed. More than
--max-errors errors stop the run and exit 1. Ctrl-C stops the run early and
prints what it measured. An https:// URL is loaded over TLS (HTTP/1.1, a
handshake per connection before the clock starts), verified with the system's
roots or --ca; no HTTP/2.

The generator's CPU per request (getrusage of this process) shows its share of
a machine it shares with the server.

  nylon bench -c 32 -d 30s --warmup 5s 'http://127.0.0.1:8080/hello?name=x'`,
		run: runBench,
	}
}

type benchFlags struct {
	output       string
	concurrency  int
	requests     int
	duration     time.Duration
	warmup       time.Duration
	method       string
	headers      []string
	body         string
	bodyFile     string
	expectStatus int
	expectBody   *string // nil: any body
	maxErrors    int
	timeout      time.Duration
	ca           string // PEM CA file for an https:// URL; empty: the system's roots
}

func (b *benchFlags) register(f *flagSet) {
	registerOutput(f, &b.output)
	f.Int(&b.concurrency, "concurrency", "n", "", 32, "persistent connections, each with one request in flight; -c for short")
	f.fs.Var((*intValue)(&b.concurrency), "c", "")
	intFlag(f, &b.requests, "requests", "n", "requests to make (instead of --duration); -n for short")
	f.fs.Var((*intValue)(&b.requests), "n", "")
	durationFlag(f, &b.duration, "duration", "d", "how long to keep sending requests; -d for short (default "+defaultBenchDuration.String()+" without --requests)")
	durationFlag(f, &b.warmup, "warmup", "", "load for this long first, unmeasured (default none)")
	f.String(&b.method, "method", "method", "", "GET", "HTTP method; -m for short")
	f.fs.Func("m", "", func(s string) error {
		b.method = s
		return nil
	})
	repeatedFlag(f, &b.headers, "header", "'name: value'", "request header; -H for short")
	f.String(&b.ca, "ca", "file", "", "", "PEM CA certificate(s) that verify an https:// URL's server, instead of the system's roots")
	f.fs.Func("H", "", func(s string) error {
		b.headers = append(b.headers, s)
		return nil
	})
	f.String(&b.body, "body", "text", "", "", "request body")
	f.String(&b.bodyFile, "body-file", "file", "", "", "request body read from a file (instead of --body)")
	f.Int(&b.expectStatus, "expect-status", "code", "", 200, "status every response must have")
	f.fs.Func("expect-body", "", func(s string) error {
		b.expectBody = &s
		return nil
	})
	f.doc("expect-body", "text", "", "", "exact body every response must have (default: any body)")
	f.Int(&b.maxErrors, "max-errors", "n", "", 0, "errors tolerated: one more stops the run and exits 1; -1 tolerates any number")
	f.Duration(&b.timeout, "timeout", "", loadgen.DefaultTimeout, "a request failing to complete within about this long is an error (between half of it and all of it)")
}

// durationFlag defines a duration flag without an environment variable,
// with an optional one-letter alias.
func durationFlag(f *flagSet, p *time.Duration, name, short, usage string) {
	set := func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("not a duration (like 30s or 2m)")
		}
		*p = d
		return nil
	}
	f.fs.Func(name, usage, set)
	if short != "" {
		f.fs.Func(short, "", set)
	}
	f.doc(name, "duration", "", "", usage)
}

// benchReport is what bench prints; its JSON form is the -o json output.
type benchReport struct {
	URL         string `json:"url"`
	Method      string `json:"method"`
	Concurrency int    `json:"concurrency"`
	loadgen.Summary
}

func runBench(ctx context.Context, a *app, cmd command, args []string) error {
	var fl benchFlags
	f := newFlagSet(a, cmd, "[flags] <url>")
	fl.register(f)
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd.name, pos, "<url>"); err != nil {
		return err
	}
	spec, opts, err := fl.load(cmd.name, pos[0])
	if err != nil {
		return err
	}
	conc := fl.concurrency
	if opts.Requests > 0 {
		// More connections than requests would only dial idle ones.
		conc = min(conc, opts.Requests)
	}

	what := fmt.Sprintf("%d requests", opts.Requests)
	if opts.Duration > 0 {
		what = opts.Duration.String()
	}
	if opts.Warmup > 0 {
		what += " after a " + opts.Warmup.String() + " warm-up"
	}
	fmt.Fprintf(a.stderr, "bench: %s %s, %d connections, %s; Ctrl-C stops early\n", spec.Method, pos[0], conc, what)

	pool, err := loadgen.DialPool(ctx, spec, conc)
	if err != nil {
		return fmt.Errorf("bench %s: %w", pos[0], err)
	}
	defer pool.Close()
	res, err := pool.Run(ctx, opts)
	if err != nil {
		return fmt.Errorf("bench %s: %w", pos[0], err)
	}
	rep := benchReport{URL: pos[0], Method: spec.Method, Concurrency: conc, Summary: res.Summary()}
	if err := rep.write(a.stdout, fl.output); err != nil {
		return err
	}
	if fl.maxErrors >= 0 && res.Errors > fl.maxErrors {
		return fmt.Errorf("bench %s: %d of %d requests failed (--max-errors %d); first: %v",
			pos[0], res.Errors, res.Requests, fl.maxErrors, res.FirstError)
	}
	return nil
}

// load checks the flags and returns the load they describe.
func (fl *benchFlags) load(cmd, rawURL string) (loadgen.Spec, loadgen.Options, error) {
	var none loadgen.Spec
	if err := checkOutput(cmd, fl.output); err != nil {
		return none, loadgen.Options{}, err
	}
	spec, err := loadgen.ParseURL(rawURL)
	if err != nil {
		return none, loadgen.Options{}, usageErrorf(cmd, "%v", err)
	}
	opts := loadgen.Options{Requests: fl.requests, Duration: fl.duration, Warmup: fl.warmup, MaxErrors: fl.maxErrors}
	switch {
	case fl.concurrency < 1:
		return none, opts, usageErrorf(cmd, "--concurrency: %d: want at least 1", fl.concurrency)
	case fl.requests < 0:
		return none, opts, usageErrorf(cmd, "--requests: %d is negative", fl.requests)
	case fl.duration < 0 || fl.warmup < 0:
		return none, opts, usageErrorf(cmd, "--duration and --warmup must not be negative")
	case fl.requests > 0 && fl.duration > 0:
		return none, opts, usageErrorf(cmd, "--requests and --duration: give one of them")
	case fl.timeout <= 0:
		return none, opts, usageErrorf(cmd, "--timeout: %v must be positive", fl.timeout)
	case fl.maxErrors < -1:
		return none, opts, usageErrorf(cmd, "--max-errors: %d: want -1 (any) or more", fl.maxErrors)
	case fl.body != "" && fl.bodyFile != "":
		return none, opts, usageErrorf(cmd, "--body and --body-file: give one of them")
	}
	if fl.requests == 0 && fl.duration == 0 {
		opts.Duration = defaultBenchDuration
	}
	spec.Method = strings.ToUpper(fl.method)
	if spec.Method == "" {
		spec.Method = "GET"
	}
	spec.ExpectStatus = fl.expectStatus
	spec.Timeout = fl.timeout
	if fl.expectBody != nil {
		spec.ExpectBody, spec.CheckBody = []byte(*fl.expectBody), true
	}
	for _, h := range fl.headers {
		k, v, ok := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return none, opts, usageErrorf(cmd, "--header %q: want 'name: value'", h)
		}
		// -H 'Host: x' sets the Host header, as curl's does.
		if strings.EqualFold(k, "Host") {
			spec.Host = v
			continue
		}
		spec.Header = append(spec.Header, loadgen.Header{Name: k, Value: v})
	}
	if fl.ca != "" {
		// Refused rather than ignored with http://: the operator meant the
		// load to be verified.
		if spec.TLS == nil {
			return none, opts, usageErrorf(cmd, "--ca: %s verifies https:// URLs only, and the URL is %q", fl.ca, rawURL)
		}
		pool, err := loadCAFile(fl.ca)
		if err != nil {
			return none, opts, usageErrorf(cmd, "--ca: %v", err)
		}
		spec.TLS.RootCAs = pool
	}
	spec.Body = []byte(fl.body)
	if fl.bodyFile != "" {
		// A usage error too: the command line names a file that is not there.
		if spec.Body, err = os.ReadFile(fl.bodyFile); err != nil {
			return none, opts, usageErrorf(cmd, "--body-file: %v", err)
		}
	}
	if err := spec.Validate(); err != nil {
		return none, opts, usageErrorf(cmd, "%v", err)
	}
	return spec, opts, nil
}

func (r *benchReport) write(w io.Writer, output string) error {
	if output == outputJSON {
		return writeJSONValue(w, r)
	}
	s := &r.Summary
	fmt.Fprintf(w, "%s %s, %d connections, %.3fs\n", r.Method, r.URL, r.Concurrency, s.ElapsedSeconds)
	tw := newTable(w)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("requests", "%d (%d ok, %d errors)", s.Requests, s.OK, s.Errors)
	row("throughput", "%.1f req/s", s.RPS)
	row("latency", "p50 %s, p90 %s, p99 %s, max %s", formatMS(s.LatencyMS.P50), formatMS(s.LatencyMS.P90),
		formatMS(s.LatencyMS.P99), formatMS(s.LatencyMS.Max))
	row("statuses", "%s", formatStatuses(s.Statuses))
	row("generator", "%.1f µs CPU per request, %.2f cores", s.CPUMicrosPerRequest, s.CPUCores)
	if s.WarmupRequests > 0 || s.WarmupErrors > 0 {
		row("warm-up", "%d requests, %d errors (not counted above)", s.WarmupRequests, s.WarmupErrors)
	}
	if s.FirstError != "" {
		row("first error", "%s", s.FirstError)
	}
	switch s.Stopped {
	case "max-errors":
		row("stopped", "early: more errors than --max-errors")
	case "interrupted":
		row("stopped", "early: interrupted")
	}
	return tw.Flush()
}

// formatMS renders a latency in milliseconds with three decimals, enough
// for the tens of microseconds of a loopback round trip.
func formatMS(ms float64) string { return strconv.FormatFloat(ms, 'f', 3, 64) + " ms" }

// formatStatuses renders status counts as "200: 90, 503: 10".
func formatStatuses(m map[int]int) string {
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d: %d", c, m[c])
	}
	return orDash(strings.Join(parts, ", "))
}
