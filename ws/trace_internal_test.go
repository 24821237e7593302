package ws

import (
	"strings"
	"testing"

	"github.com/coder/websocket"
)

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
