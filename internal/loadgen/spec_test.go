package loadgen

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url                string
		addr, host, target string
		err                error
	}{
		{url: "http://127.0.0.1:8080/hello?name=x", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", target: "/hello?name=x"},
		{url: "http://example.com", addr: "example.com:80", host: "example.com", target: "/"},
		{url: "http://[::1]:9000/a%20b?q=1#frag", addr: "[::1]:9000", host: "[::1]:9000", target: "/a%20b?q=1"},
		{url: "https://example.com/", addr: "example.com:443", host: "example.com", target: "/"},
		{url: "ftp://example.com/", err: ErrUnsupportedScheme},
		{url: "127.0.0.1:8080/hello", err: ErrUnsupportedScheme},
		{url: "http:///path", err: ErrInvalidSpec},
		{url: "http://user:pw@example.com/", err: ErrInvalidSpec},
		{url: "http://example.com:0/", err: ErrInvalidSpec},
		{url: "http://exa mple.com/", err: ErrInvalidSpec},
	} {
		s, err := ParseURL(tc.url)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: error %v, want %v", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil || s.Addr != tc.addr || s.Host != tc.host || s.Target != tc.target {
			t.Errorf("%s: %+v, %v; want addr %s host %s target %s", tc.url, s, err, tc.addr, tc.host, tc.target)
		}
		if https := strings.HasPrefix(tc.url, "https:"); (s.TLS != nil) != https {
			t.Errorf("%s: TLS %v, want it set only for https", tc.url, s.TLS)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{Addr: "127.0.0.1:80"}
	for _, tc := range []struct {
		name string
		edit func(*Spec)
	}{
		{"no address", func(s *Spec) { s.Addr = "" }},
		{"address without port", func(s *Spec) { s.Addr = "localhost" }},
		{"method with space", func(s *Spec) { s.Method = "GET /x" }},
		{"target with space", func(s *Spec) { s.Target = "/a b" }},
		{"target with CRLF", func(s *Spec) { s.Target = "/\r\nX: y" }},
		{"host with CR", func(s *Spec) { s.Host = "a\rb" }},
		{"header name with colon", func(s *Spec) { s.Header = []Header{{"X:Y", "1"}} }},
		{"header value injection", func(s *Spec) { s.Header = []Header{{"X", "1\r\nEvil: 1"}} }},
		{"reserved Content-Length", func(s *Spec) { s.Header = []Header{{"content-length", "5"}} }},
		{"reserved Connection", func(s *Spec) { s.Header = []Header{{"Connection", "close"}} }},
		{"reserved Host", func(s *Spec) { s.Header = []Header{{"Host", "x"}} }},
		{"interim status", func(s *Spec) { s.ExpectStatus = 101 }},
		{"status out of range", func(s *Spec) { s.ExpectStatus = 600 }},
		{"negative timeout", func(s *Spec) { s.Timeout = -time.Second }},
	} {
		s := ok
		tc.edit(&s)
		if err := s.Validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: %v, want ErrInvalidSpec", tc.name, err)
		}
	}
	good := ok
	good.Header = []Header{{"Authorization", "Bearer a b\tc"}}
	good.ExpectStatus = 204
	if err := good.Validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

func TestRequestEncoding(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		// The end-to-end benchmark's request, byte for byte as it always was.
		{Spec{Addr: "127.0.0.1:8080", Target: "/hello?name=x"}, "GET /hello?name=x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"},
		{Spec{Addr: "h:80"}, "GET / HTTP/1.1\r\nHost: h:80\r\n\r\n"},
		{Spec{Addr: "h:80", Host: "h", Method: "POST", Target: "/in", Header: []Header{{"Content-Type", "text/plain"}, {"X-A", "1"}}, Body: []byte("hi")},
			"POST /in HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"},
		{Spec{Addr: "h:80", Method: "PUT"}, "PUT / HTTP/1.1\r\nHost: h:80\r\nContent-Length: 0\r\n\r\n"},
	} {
		if got := string(tc.spec.appendRequest(nil)); got != tc.want {
			t.Errorf("request\n%q\nwant\n%q", got, tc.want)
		}
	}
}
