package protocol

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		err       error
		kind      Kind
		ok        bool
		transport bool
	}{
		{fmt.Errorf("call: %w", ErrTimeout), KindTimeout, true, true},
		{ErrNoResponder, KindNoResponder, true, true},
		{&DecodeError{Field: "data"}, KindDecode, true, true},
		{&PluginError{Message: "denied"}, KindPlugin, true, false},
		{errors.New("other"), "", false, false},
		{nil, "", false, false},
	} {
		k, ok := KindOf(tc.err)
		if k != tc.kind || ok != tc.ok || Transport(tc.err) != tc.transport {
			t.Errorf("%v: KindOf = %q %v, Transport = %v", tc.err, k, ok, Transport(tc.err))
		}
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	cause := errors.New("boom")
	e := &DecodeError{Field: "data.request.headers[3]", Err: cause}
	if e.Error() != "decode data.request.headers[3]: boom" || !errors.Is(e, cause) || !errors.Is(e, ErrDecode) {
		t.Errorf("DecodeError: %q", e.Error())
	}
	if (&DecodeError{Field: "x"}).Error() != "decode x" {
		t.Error("DecodeError without cause")
	}
	p := &PluginError{Message: "denied"}
	if p.Error() != "plugin: denied" || !errors.Is(p, ErrPlugin) {
		t.Errorf("PluginError: %q", p.Error())
	}
}
