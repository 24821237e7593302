package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// TestServeHTTPLimits: the gateway's listener holds at most
// --http-max-connections connections (more wait to be accepted), closes
// idle keep-alive connections after --http-idle-timeout, and a request
// whose body does not arrive within --http-read-timeout loses its
// connection.
func TestServeHTTPLimits(t *testing.T) {
	b := startCmd(t, serveArgs(t, "--http-max-connections", "2", "--http-read-timeout", "1s", "--http-idle-timeout", "3s")...)
	b.waitLine(t, readyLine)
	u, err := url.Parse(b.waitLine(t, gatewayLine))
	if err != nil {
		t.Fatal(err)
	}
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c, bufio.NewReader(c)
	}
	// get sends one keep-alive request and reads the answer (404: no route).
	get := func(c net.Conn, r *bufio.Reader, wait time.Duration) error {
		if _, err := io.WriteString(c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			return errors.New("status " + resp.Status)
		}
		return nil
	}

	a, ar := dial()
	if err := get(a, ar, 5*time.Second); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	bc, br := dial()
	if err := get(bc, br, 5*time.Second); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	idleSince := time.Now()

	// A third connection is not served while two are open...
	c, cr := dial()
	if err := get(c, cr, 700*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection while two are open: %v, want no answer", err)
	}
	// ...and is once one of them closes.
	_ = a.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(cr, nil)
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("third connection after a slot freed: %v", err)
	}
	resp.Body.Close()
	_ = c.Close()

	// The idle keep-alive connection is closed by the server.
	_ = bc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %v, want EOF from the server closing it", err)
	}
	if d := time.Since(idleSince); d < 2*time.Second || d > 8*time.Second {
		t.Fatalf("idle connection closed after %v, want about the 3s idle timeout", d)
	}

	// Headers that never end lose their connection at the read timeout
	// too (not net/http's 10 s header timeout).
	h, hr := dial()
	if _, err := io.WriteString(h, "GET /nope HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = h.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, hr); err != nil || time.Since(start) > 2500*time.Millisecond {
		t.Fatalf("slow headers: connection still open after %v (%v)", time.Since(start), err)
	}
	_ = h.Close()

	// A body trickling in loses its connection at the read timeout.
	d, dr := dial()
	if _, err := io.WriteString(d, "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("a", 10)); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_ = d.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, dr) // whatever answer, then the close
	if err != nil || time.Since(start) > 2500*time.Millisecond {
		t.Fatalf("slow body: connection still open after %v (%v)", time.Since(start), err)
	}
}
