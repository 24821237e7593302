package wasmhost_test

import (
	"reflect"
	"testing"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/wasmhost"
)

// TestWriteHeaderValueControls: a real guest writing a header value (op 100
// set, 402 add, 400 set upstream) that holds a control character other than
// HTAB gets -3 (bad argument) and no op, as for CR, LF and NUL: such a
// value passes Go's net/http server unchanged and a strict proxy in front
// of the gateway answers the response with 502. A tab and obs-text (0xE9,
// 0xFF) are RFC 9110 field content and are kept as written.
func TestWriteHeaderValueControls(t *testing.T) {
	h, _ := newHost(t, wasmhost.Config{})
	m := compile(t, h, "abi", testutil.Wasm(t, guestABI), wasmhost.Limits{MaxWorkers: 1})
	const (
		ok  = 0
		bad = -3
	)
	refused := []string{"a\x01b", "\x01", "a\x7f", "\x7f", "\x08", "\x0b", "\x0c", "esc\x1b[31m", "\x1f", "a\r\nInjected: 1", "\x00"}
	kept := []string{"a\tb", "caf\xe9", "\xff\x80", " padded "}
	var steps []step
	var want []protocol.Op
	for _, code := range []uint32{protocol.OpSetResponseHeader, protocol.OpAddResponseHeader, protocol.OpSetRequestHeader} {
		for _, v := range refused {
			steps = append(steps, write(code, "X-V", v, bad))
		}
		for _, v := range kept {
			steps = append(steps, write(code, "X-V", v, ok))
			want = append(want, protocol.Op{Code: code, Key: "X-V", Value: []byte(v)})
		}
	}
	res := runScript(t, m, protocol.PhaseRequestFilter, 0, &protocol.Invocation{Request: request()}, protocol.NewRequestID(), steps)
	if !reflect.DeepEqual(res.Ops, want) {
		t.Errorf("ops\n got %s\nwant %s", fmtOps(res.Ops), fmtOps(want))
	}
}
