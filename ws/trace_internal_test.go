package ws

import (
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/protocol"
)

func TestTraceContext(t *testing.T) {
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tc := traceFrom(parent)
	a, b := tc.next(), tc.next()
	if !protocol.ValidTraceparent(a) || !protocol.ValidTraceparent(b) {
		t.Fatalf("invalid traceparents %q %q", a, b)
	}
	if a[:36] != parent[:36] || a[52:] != parent[52:] || a == b {
		t.Fatalf("want the parent's trace id and flags with new span ids: %q %q", a, b)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01", strings.ToUpper(parent), "01" + parent[2:] + "x"} {
		if protocol.ValidTraceparent(bad) {
			t.Errorf("protocol.ValidTraceparent(%q) = true", bad)
		}
		fresh := traceFrom(bad)
		got := fresh.next()
		if !protocol.ValidTraceparent(got) || got[53:] != "00" { // fresh traces are not sampled
			t.Errorf("fresh trace from %q: %q", bad, got)
		}
	}
	x, y := traceFrom(""), traceFrom("")
	if x.next()[3:35] == y.next()[3:35] {
		t.Errorf("fresh trace ids repeat")
	}
}

func TestTruncateReasonAndCodes(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	got := truncateReason(long)
	if len(got) > 123 || !strings.HasPrefix(long, got) || len(got)%2 != 0 {
		t.Fatalf("truncateReason cut %d bytes mid-rune", len(got))
	}
	for code, want := range map[int]bool{999: false, 1000: true, 1004: false, 1005: false, 1006: false, 1011: true, 1015: false, 2999: false, 3000: true, 4999: true, 5000: false} {
		if sendableCode(websocket.StatusCode(code)) != want {
			t.Errorf("sendableCode(%d) = %v", code, !want)
		}
	}
}
