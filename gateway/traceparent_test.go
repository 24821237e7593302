package gateway

import (
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/protocol"
)

func TestTraceparentContinuesValidTraces(t *testing.T) {
	for _, in := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", // a newer version may append fields
	} {
		out := nextTraceparent(in)
		if !protocol.ValidTraceparent(out) || !strings.HasPrefix(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
			t.Errorf("%q -> %q: want the same trace", in, out)
		}
		if out[36:52] == in[36:52] {
			t.Errorf("%q -> %q: want a new span id", in, out)
		}
		if out[53:55] != in[53:55] {
			t.Errorf("%q -> %q: flags not kept", in, out)
		}
	}
}

func TestTraceparentRestartsInvalidTraces(t *testing.T) {
	for _, in := range []string{
		"",
		"garbage",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // uppercase
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // forbidden version
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // version 00 has no extra fields
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
	} {
		out := nextTraceparent(in)
		if !protocol.ValidTraceparent(out) || strings.Contains(out, "4bf92f3577b34da6a3ce929d0e0e4736") || !strings.HasSuffix(out, "-00") {
			t.Errorf("%q -> %q: want a fresh unsampled trace", in, out)
		}
	}
	if nextTraceparent("") == nextTraceparent("") {
		t.Error("fresh traces repeat")
	}
}
