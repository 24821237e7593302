package sdk

import (
	"net/textproto"
	"reflect"
	"testing"
)

var headerKeys = []string{
	"", "a", "content-type", "Content-Type", "CONTENT-TYPE", "x-forwarded-for", "X-FORWARDED-FOR",
	"www-authenticate", "-x-", "x--y", "with space", "bad:colon", "uni\u00e9", "x_under_score", "1a-2b",
	"sec-websocket-key", "a\x00b",
}

func TestCanonicalHeaderKeyMatchesTextproto(t *testing.T) {
	for _, k := range headerKeys {
		checkCanonical(t, k)
	}
}

func FuzzCanonicalHeaderKey(f *testing.F) {
	for _, k := range headerKeys {
		f.Add(k)
	}
	f.Fuzz(checkCanonical)
}

func checkCanonical(t *testing.T, k string) {
	if got, want := CanonicalHeaderKey(k), textproto.CanonicalMIMEHeaderKey(k); got != want {
		t.Errorf("CanonicalHeaderKey(%q) = %q, want %q", k, got, want)
	}
}

func TestHeader(t *testing.T) {
	h := Header{}
	h.Add("x-a", "1")
	h.Add("X-A", "2")
	h.Set("content-type", "text/plain")
	if got := h.Get("X-a"); got != "1" {
		t.Errorf("Get = %q, want 1", got)
	}
	if got := h.Values("x-A"); !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("Values = %q", got)
	}
	h.Del("X-A")
	if want := (Header{"Content-Type": {"text/plain"}}); !reflect.DeepEqual(h, want) {
		t.Errorf("after Del: %v, want %v", h, want)
	}
	if h.Get("missing") != "" {
		t.Error("Get(missing) not empty")
	}
}

func TestEachPair(t *testing.T) {
	cases := []struct {
		in   string
		want [][2]string
	}{
		{"", nil},
		{"a\x00b\x00", [][2]string{{"a", "b"}}},
		{"a\x00b\x00c\x00\x00", [][2]string{{"a", "b"}, {"c", ""}}},
		{"a\x00b", [][2]string{{"a", "b"}}},                 // no final separator
		{"a\x00b\x00c", [][2]string{{"a", "b"}, {"c", ""}}}, // dangling name
		{"\x00v\x00", [][2]string{{"", "v"}}},
	}
	for _, tc := range cases {
		var got [][2]string
		eachPair([]byte(tc.in), func(n, v string) { got = append(got, [2]string{n, v}) })
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("eachPair(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
