package e2ebench

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// cannedServer answers every request on its connections with resp, byte
// for byte, so the load generator's parser can be fed exactly the framing
// under test. It reads requests line by line up to the empty line (they
// have no body) and allocates nothing per request.
func cannedServer(t *testing.T, resp string) string {
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

func TestLoadConnParsesResponses(t *testing.T) {
	const body = `{"message":"hello, x"}`
	for _, tc := range []struct {
		name, resp string
		err        string // a substring of the error; "" for success
	}{
		{name: "content-length", resp: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n" + body},
		{name: "lowercase header, no reason", resp: "HTTP/1.1 200\r\ncontent-length: 22\r\n\r\n" + body},
		{name: "chunked with extension and trailer",
			resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n{\"mes\r\n11\r\nsage\":\"hello, x\"}\r\n0\r\nX-Trailer: 1\r\n\r\n"},
		{name: "interim 100 skipped", resp: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n" + body},
		{name: "wrong status", resp: "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 22\r\n\r\n" + body, err: "status 502"},
		{name: "wrong body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n" + strings.ToUpper(body), err: "body"},
		{name: "no length", resp: "HTTP/1.1 200 OK\r\n\r\n" + body, err: "neither Content-Length"},
		{name: "connection close", resp: "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 22\r\n\r\n" + body, err: "close"},
		{name: "conflicting lengths", resp: "HTTP/1.1 200 OK\r\nContent-Length: 22\r\nContent-Length: 23\r\n\r\n" + body, err: "Content-Length"},
		{name: "bad status line", resp: "HTTP/1.1 2000 OK\r\nContent-Length: 22\r\n\r\n" + body, err: "status line"},
		{name: "bad chunk size", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", err: "chunk size"},
		{name: "gzip coding", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", err: "Transfer-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialLoad(cannedServer(t, tc.resp), target, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Twice: the second exchange proves the first left the
			// connection at the start of the next response.
			for i := range 2 {
				err := c.do()
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
// small body written at once, chunked when the handler flushes first.
func TestLoadConnAgainstNetHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") != "" {
			w.(http.Flusher).Flush()
		}
		_, _ = w.Write([]byte(wantBody))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, target := range []string{"/hello", "/hello?chunked=1"} {
		c, err := dialLoad(addr, target, []byte(wantBody))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := c.do(); err != nil {
				t.Fatalf("%s, exchange %d: %v", target, i, err)
			}
		}
		_ = c.Close()
	}
	c, err := dialLoad(addr, "/hello", []byte("something else"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.do(); err == nil {
		t.Fatal("a different body passed the check")
	}
}

// TestLoadConnDoesNotAllocate keeps the generator off the allocation
// figures of the benchmarks (allocs/op counts the whole process).
func TestLoadConnDoesNotAllocate(t *testing.T) {
	for _, resp := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\n" + wantBody,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n16\r\n" + wantBody + "\r\n0\r\n\r\n",
	} {
		c, err := dialLoad(cannedServer(t, resp), target, []byte(wantBody))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var doErr error
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.do(); err != nil && doErr == nil {
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
