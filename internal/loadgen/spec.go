package loadgen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one exchange (and one dial) when Spec.Timeout is 0,
// so a server that stops answering fails the request instead of hanging the
// run.
const DefaultTimeout = 10 * time.Second

// ErrInvalidSpec is wrapped by every error of Spec validation and ParseURL.
var ErrInvalidSpec = errors.New("invalid load spec")

// ErrUnsupportedScheme is wrapped by ParseURL for a URL that is neither
// http:// nor https://; the generator speaks HTTP/1.1 only, over TLS or not.
var ErrUnsupportedScheme = errors.New("unsupported scheme")

// Header is one request header line.
type Header struct {
	Name, Value string
}

// Spec is the request every connection of a load sends and what every
// response must be. The zero value with Addr set is GET / expecting 200
// with any body.
type Spec struct {
	// Addr is the host:port to dial.
	Addr string
	// Method of the request; "GET" when empty.
	Method string
	// Target is the request-target: path and query, "/" when empty.
	Target string
	// Host is the Host header; Addr when empty.
	Host string
	// Header holds further request headers, sent in order. Host,
	// Content-Length, Transfer-Encoding and Connection are the
	// generator's and refused here.
	Header []Header
	// Body is sent with a Content-Length on every request.
	Body []byte
	// ExpectStatus is the status every response must have; 200 when 0.
	ExpectStatus int
	// ExpectBody is the exact body every response must have when CheckBody
	// is set (so an empty ExpectBody can demand an empty body).
	ExpectBody []byte
	CheckBody  bool
	// Timeout bounds the dial and one exchange; DefaultTimeout when 0. The
	// connection's deadline is renewed only once less than half of it is
	// left, so an exchange fails after between Timeout/2 and Timeout.
	Timeout time.Duration
	// TLS, when set, makes every connection HTTPS: a TLS handshake at dial
	// (within Timeout), offering only HTTP/1.1 by ALPN. Its ServerName is
	// Host's (or Addr's) host when empty. nil: plain HTTP.
	TLS *tls.Config
}

// ParseURL returns the Spec of a GET of rawURL: Addr, Host and Target set
// from an http:// or https:// URL (port 80 or 443 when the URL has none);
// an https:// URL also sets TLS, verifying with the system's roots.
// Anything else wraps ErrUnsupportedScheme.
func ParseURL(rawURL string) (Spec, error) {
	if !strings.Contains(rawURL, "://") {
		return Spec{}, fmt.Errorf("%w: %q: want an http:// or https:// URL like http://127.0.0.1:8080/path", ErrUnsupportedScheme, rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return Spec{}, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return Spec{}, fmt.Errorf("%w: %q: want an http:// or https:// URL", ErrUnsupportedScheme, rawURL)
	case u.Host == "" || u.Hostname() == "":
		return Spec{}, fmt.Errorf("%w: %q: no host", ErrInvalidSpec, rawURL)
	case u.User != nil:
		return Spec{}, fmt.Errorf("%w: %q: user info in the URL is not sent; give an Authorization header instead", ErrInvalidSpec, rawURL)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Spec{}, fmt.Errorf("%w: %q: bad port %q", ErrInvalidSpec, rawURL, port)
	}
	s := Spec{
		Addr:   net.JoinHostPort(u.Hostname(), port),
		Host:   u.Host,
		Target: u.RequestURI(),
	}
	if u.Scheme == "https" {
		// The URL's host names the certificate, whatever Host header is
		// sent later (as curl does with -H Host).
		s.TLS = &tls.Config{ServerName: u.Hostname()}
	}
	return s, nil
}

// reservedHeaders are written by the generator itself: the request framing
// and keep-alive are what it measures.
var reservedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection"}

// Validate checks that s describes a well-formed request: tokens where
// HTTP wants tokens, no CR, LF or NUL anywhere in a line, a status a final
// response can have. Errors wrap ErrInvalidSpec.
func (s Spec) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
	}
	if s.Addr == "" {
		return fail("no address")
	}
	if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		return fail("address %q: %v", s.Addr, err)
	}
	if s.Method != "" && !isToken(s.Method) {
		return fail("method %q is not an HTTP token", s.Method)
	}
	if s.Target != "" && !isPrintable(s.Target, false) {
		return fail("target %q: spaces or control characters", s.Target)
	}
	if s.Host != "" && !isPrintable(s.Host, false) {
		return fail("host %q: spaces or control characters", s.Host)
	}
	for _, h := range s.Header {
		if !isToken(h.Name) {
			return fail("header name %q is not an HTTP token", h.Name)
		}
		for _, r := range reservedHeaders {
			if strings.EqualFold(h.Name, r) {
				return fail("header %s is set by the load generator", r)
			}
		}
		if !isPrintable(h.Value, true) {
			return fail("header %s: value has control characters", h.Name)
		}
	}
	if s.ExpectStatus != 0 && (s.ExpectStatus < 200 || s.ExpectStatus > 599) {
		return fail("expected status %d: want 200 to 599 (1xx are interim responses)", s.ExpectStatus)
	}
	if s.Timeout < 0 {
		return fail("timeout %v is negative", s.Timeout)
	}
	return nil
}

// prepared is a validated Spec with its request encoded once.
type prepared struct {
	addr    string
	tls     *tls.Config // nil: plain HTTP
	req     []byte
	status  int
	want    []byte
	check   bool
	head    bool
	timeout time.Duration
}

func (s Spec) prepare() (*prepared, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	p := &prepared{
		addr:    s.Addr,
		req:     s.appendRequest(nil),
		status:  s.ExpectStatus,
		want:    s.ExpectBody,
		check:   s.CheckBody,
		head:    s.method() == "HEAD",
		timeout: s.Timeout,
	}
	if p.status == 0 {
		p.status = 200
	}
	if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	if s.TLS != nil {
		// HTTP/1.1 only: the generator frames the exchange itself.
		p.tls = s.TLS.Clone()
		p.tls.NextProtos = []string{"http/1.1"}
		if p.tls.ServerName == "" {
			host := s.Host
			if host == "" {
				host = s.Addr
			}
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			p.tls.ServerName = host
		}
	}
	return p, nil
}

func (s Spec) method() string {
	if s.Method == "" {
		return "GET"
	}
	return s.Method
}

// appendRequest appends the encoded request to b. A GET without headers or
// body is just the request line and Host.
func (s Spec) appendRequest(b []byte) []byte {
	target, host := s.Target, s.Host
	if target == "" {
		target = "/"
	}
	if host == "" {
		host = s.Addr
	}
	m := s.method()
	b = append(b, m...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for _, h := range s.Header {
		b = append(b, h.Name...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	// Methods with a body by definition say so even when it is empty, as
	// net/http's client does.
	if len(s.Body) > 0 || m == "POST" || m == "PUT" || m == "PATCH" {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(s.Body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, s.Body...)
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isPrintable reports whether s has no control characters (and no spaces
// unless spaces is set): nothing that could end a line or a field early.
func isPrintable(s string, spaces bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && !(spaces && c == '\t') || c == 0x7f || (c == ' ' && !spaces) {
			return false
		}
	}
	return true
}
