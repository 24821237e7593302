package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Errors of one exchange, wrapped with the details.
var (
	// ErrStatus: the response's status is not Spec.ExpectStatus.
	ErrStatus = errors.New("unexpected status")
	// ErrBody: the response's body is not Spec.ExpectBody.
	ErrBody = errors.New("unexpected body")
	// ErrMalformed: the response is not HTTP/1.1 the parser accepts.
	ErrMalformed = errors.New("malformed response")
	// ErrClose: the server asked to close the connection; the generator
	// measures persistent connections, so that is a failure.
	ErrClose = errors.New("server asked to close the connection (Connection: close)")

	errNoLength = fmt.Errorf("%w: response has neither Content-Length nor chunked encoding (not keep-alive)", ErrMalformed)
)

// keepUnchecked is how much of a body is kept at least, for the message of
// a status or body error; a checked body keeps one byte more than expected.
const keepUnchecked = 128

// Conn is one persistent HTTP/1.1 connection of the load generator, in the
// way wrk-class tools drive a server: the request is encoded once and
// written as is, and the response is parsed in place from a bufio.Reader,
// so the client costs a write and a read syscall per request and no
// allocation. The Go net/http client would cost about as much CPU as a
// small server it measures, on the same cores.
//
// A Conn is used by one goroutine at a time, except Close, which may be
// called at any time to abort an exchange.
type Conn struct {
	conn net.Conn
	br   *bufio.Reader
	p    *prepared
	// body keeps the start of the received body (up to cap(body)); bodyLen
	// is the length of the whole body.
	body    []byte
	bodyLen int
	status  int // of the last final response; 0 before one
	// deadline is the connection's read and write deadline, renewed only
	// once less than half of the timeout is left: setting it on every
	// request cost two runtime timer updates per request, 0.5 % of the
	// end-to-end benchmark's CPU in a profile, a cost of the client, not of
	// the server.
	deadline time.Time
}

// Dial opens a keep-alive connection to s.Addr that sends the request s
// describes and checks every response against it.
func Dial(ctx context.Context, s Spec) (*Conn, error) {
	p, err := s.prepare()
	if err != nil {
		return nil, err
	}
	return dial(ctx, p)
}

func dial(ctx context.Context, p *prepared) (*Conn, error) {
	d := net.Dialer{Timeout: p.timeout}
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", p.addr, err)
	}
	if p.tls != nil {
		tc := tls.Client(conn, p.tls)
		hctx, cancel := context.WithTimeout(ctx, p.timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", p.addr, err)
		}
		conn = tc
	}
	keep := keepUnchecked
	if p.check {
		// One byte more than expected tells a longer body from the
		// expected one.
		keep = max(keep, len(p.want)+1)
	}
	return &Conn{
		conn: conn,
		br:   bufio.NewReaderSize(conn, 4<<10),
		p:    p,
		body: make([]byte, 0, keep),
	}, nil
}

// Close closes the connection; an exchange in progress fails at once.
func (c *Conn) Close() error { return c.conn.Close() }

// Status returns the status of the last final response read, also when Do
// failed on it (wrong status or body); 0 when the exchange failed before a
// status line was read.
func (c *Conn) Status() int { return c.status }

// Do sends the request and reads and checks one complete response. After an
// error the connection is in an unknown state and must be closed.
func (c *Conn) Do() error {
	c.status = 0
	if now := time.Now(); c.deadline.Sub(now) < c.p.timeout/2 {
		c.deadline = now.Add(c.p.timeout)
		if err := c.conn.SetDeadline(c.deadline); err != nil {
			return fmt.Errorf("set deadline: %w", err)
		}
	}
	if _, err := c.conn.Write(c.p.req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	status, err := c.readResponse()
	c.status = status
	// A wrong status says more than what went wrong after it (say a 503
	// with Connection: close).
	if status != 0 && status != c.p.status {
		return fmt.Errorf("%w %d (want %d): %q", ErrStatus, status, c.p.status, clip(c.body))
	}
	if err != nil {
		return err
	}
	if c.p.check && (c.bodyLen != len(c.p.want) || !bytes.Equal(c.body, c.p.want)) {
		return fmt.Errorf("%w: body %q (%d bytes), want %q", ErrBody, clip(c.body), c.bodyLen, clip(c.p.want))
	}
	return nil
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	const n = 100
	if len(b) > n {
		return append(b[:n:n], "..."...)
	}
	return b
}

// readResponse reads one final response, keeping the start of its body in
// c.body, and returns its status (also with an error, once the final
// response's status line was read; else 0). It handles exactly what a keep-alive
// exchange needs: the status line, interim 1xx responses (skipped), headers
// with Content-Length or Transfer-Encoding: chunked (with trailers), no body
// for HEAD, 204 and 304, and Connection: close, which is an error because
// the generator measures persistent connections.
func (c *Conn) readResponse() (int, error) {
	for {
		line, err := c.line()
		if err != nil {
			return 0, fmt.Errorf("status line: %w", err)
		}
		// "HTTP/1.1 200 OK": the reason phrase is optional.
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return 0, fmt.Errorf("%w: status line %q", ErrMalformed, line)
		}
		status, ok := atoi3(line[9:12])
		if !ok || status < 100 || (len(line) > 12 && line[12] != ' ') {
			return 0, fmt.Errorf("%w: status line %q", ErrMalformed, line)
		}
		c.body, c.bodyLen = c.body[:0], 0
		interim := status >= 100 && status < 200
		length, chunked, err := c.headers()
		if err != nil {
			if interim {
				status = 0
			}
			return status, err
		}
		if interim {
			if status == 101 {
				return 0, fmt.Errorf("%w: unexpected 101 Switching Protocols", ErrMalformed)
			}
			continue // an interim response: the final one follows
		}
		switch {
		case c.p.head || status == 204 || status == 304:
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
func (c *Conn) headers() (length int, chunked bool, err error) {
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
			return 0, false, fmt.Errorf("%w: header line %q", ErrMalformed, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value)) // no allocation: the conversion does not escape
			if err != nil || n < 0 || (length >= 0 && n != length) {
				return 0, false, fmt.Errorf("%w: Content-Length %q", ErrMalformed, value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// chunked must be the last coding; others are not expected.
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, false, fmt.Errorf("%w: Transfer-Encoding %q", ErrMalformed, value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("close")) {
					return 0, false, ErrClose
				}
			}
		}
	}
}

// readN reads n body bytes: those that fit in c.body's capacity are kept,
// the rest discarded, so a large body costs no memory.
func (c *Conn) readN(n int) error {
	c.bodyLen += n
	keep := min(n, cap(c.body)-len(c.body))
	if keep > 0 {
		start := len(c.body)
		c.body = c.body[:start+keep]
		if _, err := io.ReadFull(c.br, c.body[start:]); err != nil {
			return fmt.Errorf("body: %w", err)
		}
	}
	if rest := n - keep; rest > 0 {
		if _, err := c.br.Discard(rest); err != nil {
			return fmt.Errorf("body: %w", err)
		}
	}
	return nil
}

// readChunked reads a chunked body: size lines (hex, extensions ignored),
// each chunk followed by CRLF, a zero-size last chunk, then trailers up to
// an empty line.
func (c *Conn) readChunked() error {
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
			return fmt.Errorf("%w: chunk size %q", ErrMalformed, line)
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
			return fmt.Errorf("%w: no CRLF after a chunk", ErrMalformed)
		}
	}
}

// line returns the next line without its CRLF (a bare LF is accepted, as
// RFC 9112 allows). It aliases the reader's buffer until the next read.
func (c *Conn) line() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, c.br.Size())
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
