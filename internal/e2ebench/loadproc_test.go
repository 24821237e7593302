package e2ebench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/internal/loadgen"
)

// The load generator can also run in a process of its own, the way wrk
// runs beside a server on one machine: it still shares the two cores, but
// the benchmark process's CPU time then counts only the server side (HTTP
// server, gateway, nats-server, node, guest). That is the figure to hold
// against "N requests/s on a 2-core machine" when the clients are elsewhere,
// as they are in production; the in-process generator's cpu-µs/req
// includes the generator's own ~15 µs per request.

// loadgenEnv, when set to "addr conc n", makes the test binary a load
// generator instead of running tests (TestMain).
const loadgenEnv = "E2EBENCH_LOADGEN"

func TestMain(m *testing.M) {
	if spec := os.Getenv(loadgenEnv); spec != "" {
		os.Exit(loadgenMain(spec, os.Stdout))
	}
	os.Exit(m.Run())
}

// loadResult is what a generator process reports on its stdout: the
// loadgen.Summary that `nylon bench -o json` prints too, or why the load
// could not run or failed.
type loadResult struct {
	loadgen.Summary
	Err string `json:"error,omitempty"`
}

// loadgenMain runs the load described by spec and writes a loadResult to w.
func loadgenMain(spec string, w io.Writer) int {
	res := runLoadSpec(spec)
	if err := json.NewEncoder(w).Encode(res); err != nil || res.Err != "" {
		return 1
	}
	return 0
}

// runLoadSpec runs what `nylon bench -c conc -n n` runs (loadgen.DialPool,
// then Pool.Run stopping at the first error) with the benchmark's request.
func runLoadSpec(spec string) loadResult {
	var addr string
	var conc, n int
	f := strings.Fields(spec)
	if len(f) == 3 {
		addr = f[0]
		conc, _ = strconv.Atoi(f[1])
		n, _ = strconv.Atoi(f[2])
	}
	if addr == "" || conc <= 0 || n <= 0 {
		return loadResult{Err: fmt.Sprintf("%s=%q: want \"addr conc n\"", loadgenEnv, spec)}
	}
	ctx := context.Background()
	pool, err := loadgen.DialPool(ctx, helloSpec(addr), conc)
	if err != nil {
		return loadResult{Err: err.Error()}
	}
	defer pool.Close()
	res, err := pool.Run(ctx, loadgen.Options{Requests: n})
	if err != nil {
		return loadResult{Err: err.Error()}
	}
	out := loadResult{Summary: res.Summary()}
	if res.Errors > 0 {
		out.Err = fmt.Sprintf("%d request(s) failed, first error: %v", res.Errors, res.FirstError)
	}
	return out
}

// benchLoadProcess is benchLoad with the generator in a child process (this
// test binary again, see TestMain). It reports req/s and latencies as the
// generator measured them, the benchmark process's CPU per request as
// server-cpu-µs/req and the generator's as loadgen-cpu-µs/req.
func benchLoadProcess(b *testing.B, addr string, conc int) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", loadgenEnv, addr, conc, b.N))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	b.ResetTimer()
	cpu0 := loadgen.ProcessCPU()
	runErr := cmd.Run()
	cpu := loadgen.ProcessCPU() - cpu0
	b.StopTimer()
	var res loadResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		b.Fatalf("load generator: %v (exit: %v): %s%s", err, runErr, out.Bytes(), errOut.Bytes())
	}
	if res.Err != "" || runErr != nil {
		b.Fatalf("load generator: %s (exit: %v)", res.Err, runErr)
	}
	if res.OK != b.N {
		b.Fatalf("load generator: %d successful requests, want %d", res.OK, b.N)
	}
	reportLoad(b, res.Summary)
	// The server also answered the generator's conc warm-up requests in
	// this window: under 0.1 % of b.N at the sizes benchmarks run.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "server-cpu-µs/req")
	gen := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	b.ReportMetric(float64(gen.Microseconds())/float64(b.N), "loadgen-cpu-µs/req")
}

// TestLoadgenSpec checks the generator process's argument parsing and that
// a bad spec is reported, not run.
func TestLoadgenSpec(t *testing.T) {
	for _, spec := range []string{"", "127.0.0.1:1", "127.0.0.1:1 0 10", "127.0.0.1:1 2 x", "a b c d"} {
		if res := runLoadSpec(spec); res.Err == "" {
			t.Errorf("spec %q accepted", spec)
		}
	}
	var out bytes.Buffer
	if code := loadgenMain("127.0.0.1:1 1 1", &out); code != 1 || !strings.Contains(out.String(), `"error"`) {
		t.Errorf("unreachable server: exit %d, output %s", code, out.String())
	}
}
