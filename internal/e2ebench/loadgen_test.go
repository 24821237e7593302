package e2ebench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// loadConn is one persistent HTTP/1.1 connection of the load generator, in
// the way wrk-class tools drive a server: the request is encoded once and
// written as is, and the response is parsed in place from a bufio.Reader,
// so the client costs a write and a read syscall per request and no
// allocation. The Go net/http client would cost about as much CPU as the
// server it measures, on the same two cores.
type loadConn struct {
	conn    net.Conn
	br      *bufio.Reader
	req     []byte // the complete pre-encoded request
	want    []byte // the exact body every response must carry
	body    []byte // scratch for the received body
	timeout time.Duration
	// deadline is the connection's read and write deadline, renewed only
	// once less than half of timeout is left: setting it on every request
	// cost two runtime timer updates per request, 0.5 % of the gateway
	// benchmark's CPU in a profile, a cost of the client, not the server.
	deadline time.Time
}

// requestTimeout bounds one request/response exchange, so a hop that stops
// answering fails the benchmark instead of hanging it: within
// requestTimeout/2 to requestTimeout (see loadConn.deadline).
const requestTimeout = 10 * time.Second

// dialLoad opens a keep-alive connection to addr (host:port) that sends
// GET target and expects status 200 with body want on every response.
func dialLoad(addr, target string, want []byte) (*loadConn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &loadConn{
		conn:    conn,
		br:      bufio.NewReaderSize(conn, 4<<10),
		req:     []byte("GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"),
		want:    want,
		body:    make([]byte, 0, 2*len(want)+64),
		timeout: requestTimeout,
	}, nil
}

func (c *loadConn) Close() error { return c.conn.Close() }

// do sends the request and reads and checks one complete response. After an
// error the connection is in an unknown state and must be closed.
func (c *loadConn) do() error {
	if now := time.Now(); c.deadline.Sub(now) < c.timeout/2 {
		c.deadline = now.Add(c.timeout)
		if err := c.conn.SetDeadline(c.deadline); err != nil {
			return err
		}
	}
	if _, err := c.conn.Write(c.req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	status, err := c.readResponse()
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("status %d: %q", status, c.body)
	}
	if !bytes.Equal(c.body, c.want) {
		return fmt.Errorf("body %q, want %q", c.body, c.want)
	}
	return nil
}

var (
	errMalformed = errors.New("malformed response")
	errNoLength  = errors.New("response has neither Content-Length nor chunked encoding (not keep-alive)")
	errClose     = errors.New("server asked to close the connection")
)

// readResponse reads one final response into c.body and returns its status.
// It handles exactly what a keep-alive exchange needs: the status line,
// interim 1xx responses (skipped), headers with Content-Length or
// Transfer-Encoding: chunked (with trailers), and Connection: close, which
// is an error here because the benchmark measures persistent connections.
func (c *loadConn) readResponse() (int, error) {
	for {
		line, err := c.line()
		if err != nil {
			return 0, fmt.Errorf("status line: %w", err)
		}
		// "HTTP/1.1 200 OK": the reason phrase is optional.
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return 0, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		status, ok := atoi3(line[9:12])
		if !ok || (len(line) > 12 && line[12] != ' ') {
			return 0, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		length, chunked, err := c.headers()
		if err != nil {
			return 0, err
		}
		if status >= 100 && status < 200 {
			if status == 101 {
				return 0, fmt.Errorf("%w: unexpected 101 Switching Protocols", errMalformed)
			}
			continue // an interim response: the final one follows
		}
		c.body = c.body[:0]
		switch {
		case status == 204 || status == 304:
			// No body, whatever the headers say.
		case chunked:
			err = c.readChunked()
		case length >= 0:
			err = c.readN(length)
		default:
			err = errNoLength
		}
		return status, err
	}
}

// headers reads the header block and returns the Content-Length (-1 when
// absent) and whether the body is chunked.
func (c *loadConn) headers() (length int, chunked bool, err error) {
	length = -1
	for {
		line, err := c.line()
		if err != nil {
			return 0, false, fmt.Errorf("header: %w", err)
		}
		if len(line) == 0 {
			return length, chunked, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value)) // no allocation: the conversion does not escape
			if err != nil || n < 0 || (length >= 0 && n != length) {
				return 0, false, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// chunked must be the last coding; others are not expected.
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, false, fmt.Errorf("%w: Transfer-Encoding %q", errMalformed, value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("close")) {
					return 0, false, errClose
				}
			}
		}
	}
}

// readN appends exactly n body bytes to c.body.
func (c *loadConn) readN(n int) error {
	start := len(c.body)
	if cap(c.body)-start < n {
		c.body = append(c.body, make([]byte, n)...)[:start]
	}
	c.body = c.body[:start+n]
	if _, err := io.ReadFull(c.br, c.body[start:]); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

// readChunked reads a chunked body: size lines (hex, extensions ignored),
// each chunk followed by CRLF, a zero-size last chunk, then trailers up to
// an empty line.
func (c *loadConn) readChunked() error {
	for {
		line, err := c.line()
		if err != nil {
			return fmt.Errorf("chunk size: %w", err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 31)
		if err != nil {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			for { // trailers
				line, err := c.line()
				if err != nil {
					return fmt.Errorf("trailer: %w", err)
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if err := c.readN(int(size)); err != nil {
			return err
		}
		if line, err := c.line(); err != nil || len(line) != 0 {
			return fmt.Errorf("%w: no CRLF after a chunk", errMalformed)
		}
	}
}

// line returns the next line without its CRLF (a bare LF is accepted, as
// RFC 9112 allows). It aliases the reader's buffer until the next read.
func (c *loadConn) line() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", errMalformed, c.br.Size())
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// atoi3 parses a three-digit status code.
func atoi3(p []byte) (int, bool) {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(p) == 3
}
