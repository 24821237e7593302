package wasmhost_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

func TestGuestLogImport(t *testing.T) {
	h, logs := newHost(t, wasmhost.Config{})
	m := compile(t, h, "chatty", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: 1})
	id := protocol.NewRequestID()
	inv := withConfig("mode", "log", "lines", "3")
	if _, err := m.Call(context.Background(), protocol.PhaseRequestFilter, 0, inv, id); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		recs := logs.matching(t, fmt.Sprintf("hostile guest log %d", i))
		if len(recs) != 1 {
			t.Fatalf("record %d logged %d times", i, len(recs))
		}
		r := recs[0]
		if r["level"] != "INFO" || r["function"] != "chatty" || r["phase"] != "request_filter" || r["request_id"] != id.String() {
			t.Errorf("record %v lacks level, function, phase or request id", r)
		}
	}
}

// A guest printing in a loop gets its burst into the log, the rest is
// dropped and counted, and the call stays fast.
func TestGuestOutputRateLimited(t *testing.T) {
	const burst, lines = 20, 20000
	h, logs := newHost(t, wasmhost.Config{}.WithGuestLogRate(10, burst))
	m := compile(t, h, "spammer", testutil.Wasm(t, guestHostile), wasmhost.Limits{MaxWorkers: 1, Timeout: 5 * time.Second})
	ctx := context.Background()

	start := time.Now()
	if _, err := callMode(ctx, m, "print", "lines", fmt.Sprint(lines)); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	out := 0
	for _, r := range logs.matching(t, "guest output") {
		if r["function"] == "spammer" && r["stream"] == "stdout" {
			out++
		}
	}
	// The burst, plus what the rate refilled while the loop ran.
	if max := burst + int(elapsed.Seconds()*10) + 1; out < burst || out > max {
		t.Fatalf("%d output records for %d lines in %v, want %d..%d", out, lines, elapsed, burst, max)
	}
	t.Logf("%d lines printed in %v, %d logged", lines, elapsed, out)

	// Whenever the function may log again, the drops so far are reported
	// with their count: in the end every line is accounted for.
	testutil.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		if _, err := callMode(ctx, m, "print", "lines", "1"); err != nil {
			return err
		}
		var dropped float64
		for _, r := range logs.matching(t, "guest log records dropped by rate limit") {
			if r["function"] == "spammer" {
				dropped += r["dropped"].(float64)
			}
		}
		if dropped < lines-float64(out) {
			return fmt.Errorf("%v drops reported, want at least %d", dropped, lines-out)
		}
		return nil
	})
}
