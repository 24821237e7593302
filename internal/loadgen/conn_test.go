package loadgen

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	helloTarget = "/hello?name=x"
	helloBody   = `{"message":"hello, x"}`
)

// cannedServer answers every request on its connections with resp, byte
// for byte, so the parser can be fed exactly the framing under test. It
// reads requests line by line up to the empty line (they have no body) and
// allocates nothing per request.
func cannedServer(t testing.TB, resp string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	out := []byte(resp)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() })
			go func() {
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 2 { // "\r\n": end of the request
						if _, err := conn.Write(out); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// helloSpec is the end-to-end benchmark's request: GET /hello?name=x,
// expecting 200 and exactly helloBody.
func helloSpec(addr string) Spec {
	return Spec{Addr: addr, Target: helloTarget, ExpectBody: []byte(helloBody), CheckBody: true}
}

func dialT(t *testing.T, s Spec) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestLoadConnParsesResponses(t *testing.T) {
	const body = helloBody
	for _, tc := range []struct {
		name, resp string
		head       bool
		status     int    // Status() after the first exchange
		err        string // a substring of the error; "" for success
	}{
		{name: "content-length", resp: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n" + body, status: 200},
		{name: "lowercase header, no reason", resp: "HTTP/1.1 200\r\ncontent-length: 22\r\n\r\n" + body, status: 200},
		{name: "chunked with extension and trailer",
			resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n{\"mes\r\n11\r\nsage\":\"hello, x\"}\r\n0\r\nX-Trailer: 1\r\n\r\n", status: 200},
		{name: "interim 100 skipped", resp: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n" + body, status: 200},
		{name: "HEAD has no body", head: true, resp: "HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n", status: 200},
		{name: "wrong status", resp: "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 22\r\n\r\n" + body, status: 502, err: "status 502"},
		{name: "wrong status and close", resp: "HTTP/1.1 503 Unavailable\r\nConnection: close\r\n\r\n", status: 503, err: "status 503"},
		{name: "wrong body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n" + strings.ToUpper(body), status: 200, err: "body"},
		{name: "longer body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\n" + body + "!", status: 200, err: "(23 bytes)"},
		{name: "no length", resp: "HTTP/1.1 200 OK\r\n\r\n" + body, status: 200, err: "neither Content-Length"},
		{name: "connection close", resp: "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 22\r\n\r\n" + body, status: 200, err: "close"},
		{name: "conflicting lengths", resp: "HTTP/1.1 200 OK\r\nContent-Length: 22\r\nContent-Length: 23\r\n\r\n" + body, status: 200, err: "Content-Length"},
		{name: "bad status line", resp: "HTTP/1.1 2000 OK\r\nContent-Length: 22\r\n\r\n" + body, err: "status line"},
		{name: "switching protocols", resp: "HTTP/1.1 101 Switching Protocols\r\n\r\n", err: "101"},
		{name: "bad chunk size", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", status: 200, err: "chunk size"},
		{name: "gzip coding", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 200, err: "Transfer-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := helloSpec(cannedServer(t, tc.resp))
			if tc.head {
				s.Method, s.CheckBody = "HEAD", false
			}
			c := dialT(t, s)
			// Twice: the second exchange proves the first left the
			// connection at the start of the next response.
			for i := range 2 {
				err := c.Do()
				if i == 0 && c.Status() != tc.status {
					t.Errorf("Status() = %d, want %d", c.Status(), tc.status)
				}
				switch {
				case tc.err == "" && err != nil:
					t.Fatalf("exchange %d: %v", i, err)
				case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
					t.Fatalf("exchange %d: error %v, want one containing %q", i, err, tc.err)
				case tc.err != "":
					return
				}
			}
		})
	}
}

// TestLoadConnAgainstNetHTTP checks the generator against the server it
// measures, with both framings net/http chooses: Content-Length for a
// small body written at once, chunked when the handler flushes first; a
// body larger than what the Conn keeps; and the request it sends.
func TestLoadConnAgainstNetHTTP(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") != "" {
			w.(http.Flusher).Flush()
		}
		if r.URL.Path == "/big" {
			_, _ = w.Write([]byte(big))
			return
		}
		_, _ = w.Write([]byte(helloBody))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, target := range []string{"/hello", "/hello?chunked=1"} {
		s := helloSpec(addr)
		s.Target = target
		c := dialT(t, s)
		for i := range 3 {
			if err := c.Do(); err != nil {
				t.Fatalf("%s, exchange %d: %v", target, i, err)
			}
		}
	}
	// Unchecked, a large body is read past (not kept), in both framings.
	for _, target := range []string{"/big", "/big?chunked=1"} {
		c := dialT(t, Spec{Addr: addr, Target: target})
		for i := range 3 {
			if err := c.Do(); err != nil {
				t.Fatalf("%s, exchange %d: %v", target, i, err)
			}
		}
		if cap(c.body) != keepUnchecked || c.bodyLen != len(big) {
			t.Errorf("%s: kept %d bytes of %d, want at most %d", target, cap(c.body), c.bodyLen, keepUnchecked)
		}
	}
	s := helloSpec(addr)
	s.ExpectBody = []byte("something else")
	if err := dialT(t, s).Do(); !errors.Is(err, ErrBody) {
		t.Fatalf("a different body: %v, want ErrBody", err)
	}
}

// An https:// load speaks HTTP/1.1 over TLS, verified with the roots it is
// given (here the test server's own certificate), even against a server
// that offers HTTP/2; a certificate it does not trust fails the dial.
func TestLoadConnOverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.ProtoMajor != 1 {
			http.Error(w, "want HTTP/1.1 over TLS, got "+r.Proto, http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte(helloBody))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	s, err := ParseURL(srv.URL + helloTarget)
	if err != nil {
		t.Fatal(err)
	}
	s.ExpectBody, s.CheckBody = []byte(helloBody), true
	if _, err := Dial(context.Background(), s); err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("dial with the system's roots: %v, want a failed TLS handshake (a test certificate)", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	s.TLS.RootCAs = pool
	c := dialT(t, s)
	for i := range 3 {
		if err := c.Do(); err != nil {
			t.Fatalf("exchange %d over TLS: %v (status %d)", i, err, c.Status())
		}
	}
}

// TestLoadConnDoesNotAllocate keeps the generator off the allocation
// figures of the benchmarks (allocs/op counts the whole process).
func TestLoadConnDoesNotAllocate(t *testing.T) {
	for _, resp := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n" + helloBody,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n16\r\n" + helloBody + "\r\n0\r\n\r\n",
	} {
		c := dialT(t, helloSpec(cannedServer(t, resp)))
		var doErr error
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.Do(); err != nil && doErr == nil {
				doErr = err
			}
		})
		if doErr != nil {
			t.Fatal(doErr)
		}
		if allocs > 0 {
			t.Errorf("%.1f allocations per request, want 0", allocs)
		}
	}
}

// TestLoadConnCloseAbortsExchange: Close from another goroutine ends an
// exchange the server never answers (what an interrupted Run relies on).
func TestLoadConnCloseAbortsExchange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := dialT(t, Spec{Addr: ln.Addr().String()})
	accepted, err := ln.Accept() // and never answer
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	done := make(chan error, 1)
	go func() { done <- c.Do() }()
	// Wait until the request arrived, so Do is in its read.
	if _, err := bufio.NewReader(accepted).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := <-done; err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Do after Close: %v, want net.ErrClosed", err)
	}
}

// FuzzReadResponse feeds the parser arbitrary server bytes: it must return
// (a status or an error), never panic or keep more than its buffer.
func FuzzReadResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n" + helloBody,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n{\"mes\r\n11\r\nsage\":\"hello, x\"}\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := helloSpec("127.0.0.1:1").prepare()
		if err != nil {
			t.Fatal(err)
		}
		client, server := net.Pipe()
		defer client.Close()
		go func() {
			_, _ = server.Write(data)
			_ = server.Close()
		}()
		c := &Conn{conn: client, br: bufio.NewReaderSize(client, 4<<10), p: p, body: make([]byte, 0, len(p.want)+1)}
		status, err := c.readResponse()
		if err == nil && (status < 200 || status > 999) {
			t.Fatalf("status %d without an error", status)
		}
		if len(c.body) > len(p.want)+1 {
			t.Fatalf("kept %d bytes", len(c.body))
		}
	})
}
