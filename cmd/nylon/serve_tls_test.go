package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nylon-functions/nylon/internal/testutil"
)

var (
	gatewayTLSLine = regexp.MustCompile(`(?m)^gateway: (https://\S+) `)
	adminTLSLine   = regexp.MustCompile(`(?m)^admin: (https://\S+) `)
)

// tlsPair is a copy of a PKI's server certificate and key in files of
// their own, which a test may overwrite.
type tlsPair struct{ cert, key string }

func copyPair(t *testing.T, pki testutil.PKI) tlsPair {
	t.Helper()
	dir := t.TempDir()
	p := tlsPair{cert: filepath.Join(dir, "tls.crt"), key: filepath.Join(dir, "tls.key")}
	for src, dst := range map[string]string{pki.CertFile: p.cert, pki.KeyFile: p.key} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, dst, b)
	}
	return p
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// certDER is the DER of the first certificate of PEM file path.
func certDER(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	return blk.Bytes
}

func caPool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	pool, err := loadCAFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// servedCert makes a new TLS connection to addr (a full handshake: no
// session cache) and returns the DER of the certificate it was served.
func servedCert(t *testing.T, addr string, pool *x509.CertPool) ([]byte, error) {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw, nil
}

// TestServeTLS runs one serve process with both listeners on HTTPS (the
// gateway's pair from flags, the admin's from variables) and checks what
// clients see: /healthz and a function over HTTPS and HTTP/2, the CLI with
// --admin-ca, WebSocket over TLS, plain HTTP and TLS 1.1 refused, and a
// certificate rotated on disk served without a restart, a broken one not.
func TestServeTLS(t *testing.T) {
	pki := testutil.NewPKI(t)
	gwPair, adminPair := copyPair(t, pki), copyPair(t, pki)
	t.Setenv("NYLON_ADMIN_TLS_CERT", adminPair.cert)
	t.Setenv("NYLON_ADMIN_TLS_KEY", adminPair.key)
	b := startCmd(t, serveArgs(t, "--http-tls-cert", gwPair.cert, "--http-tls-key", gwPair.key, "--admin-token", cliToken)...)
	b.waitLine(t, readyLine)
	admin := b.waitLine(t, adminTLSLine)
	gw := b.waitLine(t, gatewayTLSLine)
	adminAddr, gwAddr := strings.TrimPrefix(admin, "https://"), strings.TrimPrefix(gw, "https://")

	pool := caPool(t, pki.CAFile)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	t.Run("healthz over https and HTTP/2", func(t *testing.T) {
		resp, body := get(admin + "/healthz")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"status": "ok"`) || resp.ProtoMajor != 2 {
			t.Errorf("GET /healthz = %d %s %.200s, want 200 ok over HTTP/2", resp.StatusCode, resp.Proto, body)
		}
	})

	t.Run("plain HTTP and TLS 1.1 refused", func(t *testing.T) {
		for _, addr := range []string{adminAddr, gwAddr} {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
					t.Errorf("plain GET http://%s = %d %q, want 400 from the TLS listener", addr, resp.StatusCode, body)
				}
			}
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			if err == nil {
				c.Close()
				t.Errorf("%s: TLS 1.1 handshake succeeded, want TLS 1.2 at least", addr)
			}
		}
	})

	t.Run("CLI over https", func(t *testing.T) {
		hello := testutil.WasmPath(t, "functions/examples/hello")
		chatWasm := testutil.WasmPath(t, "functions/examples/chat")
		cli := func(args ...string) (int, string, string) {
			t.Helper()
			return runCmd(t, append(args, "--admin", admin, "--token", cliToken)...)
		}
		// Without the CA the certificate is refused, with a hint.
		code, _, errOut := cli("ls")
		if code != 1 || !strings.Contains(errOut, "unknown authority") || !strings.Contains(errOut, "--admin-ca") {
			t.Errorf("ls without --admin-ca: exit %d, stderr %q; want 1, an unknown authority and the hint", code, errOut)
		}
		for _, args := range [][]string{
			{"deploy", "hello", hello, "--route", "/hello", "--quiet", "--wait", "1m", "--admin-ca", pki.CAFile},
			{"deploy", "chat", chatWasm, "--route", "/chat/ws", "--quiet", "--wait", "1m", "--admin-ca", pki.CAFile},
		} {
			if code, out, errOut := cli(args...); code != 0 {
				t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args[:2], code, out, errOut)
			}
		}
		// The variable works as the flag does.
		t.Setenv("NYLON_ADMIN_CA", pki.CAFile)
		if code, out, errOut := cli("ls"); code != 0 || !strings.Contains(out, "hello") || !strings.Contains(out, "chat") {
			t.Errorf("ls with NYLON_ADMIN_CA: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("function over https", func(t *testing.T) {
		testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
			resp, body := get(gw + "/hello?name=tls")
			if resp.StatusCode != http.StatusOK || body != `{"message":"hello, tls"}` || resp.ProtoMajor != 2 {
				return errString("GET /hello = " + resp.Status + " " + resp.Proto + " " + body)
			}
			return nil
		})
	})

	t.Run("no extended CONNECT over HTTP/2", func(t *testing.T) {
		// Browsers open a WebSocket inside an HTTP/2 connection (RFC 8441)
		// only when the server's SETTINGS enable CONNECT with :protocol;
		// the edge (coder/websocket) accepts HTTP/1.1 Upgrade only, so
		// announcing it would break browsers' WebSockets over HTTPS.
		c, err := tls.Dial("tcp", gwAddr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN negotiated %q, want h2", p)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		// The client preface and an empty SETTINGS frame (RFC 9113 3.4,
		// 6.5); the server's first frame is its SETTINGS.
		if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
			t.Fatal(err)
		}
		var hdr [9]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatal(err)
		}
		if hdr[3] != 0x4 {
			t.Fatalf("first frame has type %d, want the server's SETTINGS (4)", hdr[3])
		}
		payload := make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
		if _, err := io.ReadFull(c, payload); err != nil {
			t.Fatal(err)
		}
		const settingsEnableConnectProtocol = 0x8 // RFC 8441 3
		for i := 0; i+6 <= len(payload); i += 6 {
			id, v := binary.BigEndian.Uint16(payload[i:]), binary.BigEndian.Uint32(payload[i+2:])
			if id == settingsEnableConnectProtocol && v != 0 {
				t.Errorf("the gateway announces SETTINGS_ENABLE_CONNECT_PROTOCOL=%d (GODEBUG=http2xconnect=1?): browsers would send WebSockets as HTTP/2 CONNECT, which the edge refuses", v)
			}
		}
	})

	t.Run("WebSocket over TLS", func(t *testing.T) {
		// client holds an HTTP/2 connection to the gateway by now; the
		// upgrade needs HTTP/1.1, which the server must still offer.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		wsURL := "wss://" + gwAddr + "/chat/ws?room=tls&name="
		opts := &websocket.DialOptions{HTTPClient: client}
		alice, _, err := websocket.Dial(ctx, wsURL+"alice", opts)
		if err != nil {
			t.Fatalf("dial alice: %v", err)
		}
		defer alice.CloseNow()
		bob, _, err := websocket.Dial(ctx, wsURL+"bob", opts)
		if err != nil {
			t.Fatalf("dial bob: %v", err)
		}
		defer bob.CloseNow()
		readUntil(ctx, t, alice, "alice")
		readUntil(ctx, t, bob, "bob")
		chat(ctx, t, alice, bob, "hi over tls")
	})

	t.Run("rotation", func(t *testing.T) {
		if der, err := servedCert(t, gwAddr, pool); err != nil || !bytes.Equal(der, certDER(t, pki.CertFile)) {
			t.Fatalf("before rotation: served %x (%v), want the first certificate", der, err)
		}
		// A rotation writes a new pair over the files.
		certPEM, keyPEM := pki.ServerPair(t)
		writeTestFile(t, gwPair.key, keyPEM)
		writeTestFile(t, gwPair.cert, certPEM)
		rotated := certDER(t, gwPair.cert)
		testutil.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
			der, err := servedCert(t, gwAddr, pool)
			if err != nil {
				return err
			}
			if !bytes.Equal(der, rotated) {
				return errString("new connections still get the previous certificate")
			}
			return nil
		})
		if !strings.Contains(b.stderr.String(), "TLS certificate reloaded") {
			t.Errorf("no reload logged:\n%s", b.stderr.String())
		}
		// A function is still served, over the rotated certificate.
		if resp, body := get(gw + "/hello?name=again"); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /hello after rotation = %d %s", resp.StatusCode, body)
		}

		// A half-written certificate keeps the rotated one served, and is
		// logged as an error naming the file.
		writeTestFile(t, gwPair.cert, certPEM[:len(certPEM)/2])
		failed := regexp.MustCompile(`level=ERROR msg="TLS certificate rotation failed[^\n]*listener=gateway cert=` + regexp.QuoteMeta(gwPair.cert))
		testutil.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
			if _, err := servedCert(t, gwAddr, pool); err != nil {
				return err
			}
			if !failed.MatchString(b.stderr.String()) {
				return errString("no rotation error logged")
			}
			return nil
		})
		if der, err := servedCert(t, gwAddr, pool); err != nil || !bytes.Equal(der, rotated) {
			t.Errorf("after a broken rotation: served %x (%v), want the previous certificate", der, err)
		}
		// Once the files are whole again, their certificate is served.
		certPEM, keyPEM = pki.ServerPair(t)
		writeTestFile(t, gwPair.key, keyPEM)
		writeTestFile(t, gwPair.cert, certPEM)
		fixed := certDER(t, gwPair.cert)
		testutil.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
			der, err := servedCert(t, gwAddr, pool)
			if err != nil {
				return err
			}
			if !bytes.Equal(der, fixed) {
				return errString("the repaired pair is not served")
			}
			return nil
		})
	})

	if code := b.stop(t); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, b.stderr.String())
	}
	if strings.Contains(b.stderr.String(), "clear text") {
		t.Errorf("warned of clear text with an HTTPS admin listener:\n%s", b.stderr.String())
	}
}

// Both files of a pair or neither; files that do not load stop serve with
// exit code 2, naming the flag and the file, before anything starts.
func TestServeTLSConfigErrors(t *testing.T) {
	pki := testutil.NewPKI(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	writeTestFile(t, garbage, []byte("-----BEGIN CERTIFICATE-----\nhalf"))
	_, otherKey := pki.ServerPair(t)
	otherKeyFile := filepath.Join(dir, "other.key")
	writeTestFile(t, otherKeyFile, otherKey)
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"cert without key", nil, []string{"--http-tls-cert", pki.CertFile}, []string{"--http-tls-cert: needs --http-tls-key"}},
		{"key variable without cert", map[string]string{"NYLON_ADMIN_TLS_KEY": pki.KeyFile}, nil, []string{"--admin-tls-key: needs --admin-tls-cert"}},
		{"missing cert", nil, []string{"--http-tls-cert", missing, "--http-tls-key", pki.KeyFile}, []string{"--http-tls-cert: ", missing, "no such file"}},
		{"garbage cert", nil, []string{"--admin-tls-cert", garbage, "--admin-tls-key", pki.KeyFile}, []string{"--admin-tls-cert " + garbage, "PEM"}},
		{"key of another cert", nil, []string{"--http-tls-cert", pki.CertFile, "--http-tls-key", otherKeyFile},
			[]string{"--http-tls-key " + otherKeyFile, "does not match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			data := filepath.Join(t.TempDir(), "data")
			args := append([]string{"serve", "--nats-listen", "127.0.0.1:-1", "--data", data, "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, tt.args...)
			code, out, errOut := runCmd(t, args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr = %q, want %q", errOut, w)
				}
			}
			assertNothingStarted(t, tt.args, out, data)
		})
	}

	// The gateway's pair is loaded by processes with role gateway only, as
	// --gateway-config is.
	cfg := serveConfig{Role: "node,admin", HTTPTLS: tlsFiles{Cert: missing, Key: missing}}
	if certs, err := cfg.loadTLS(slog.New(slog.DiscardHandler)); err != nil || certs.HTTP != nil {
		t.Errorf("role node,admin with a missing gateway pair: %+v, %v; want it ignored", certs, err)
	}
}

// certReloader re-reads the pair once its files changed and the check
// interval passed; a pair that does not load keeps the previous certificate
// served and is logged once, until a whole pair is written.
func TestCertReloaderRotates(t *testing.T) {
	pki := testutil.NewPKI(t)
	p := copyPair(t, pki)
	var logs testutil.SyncBuffer
	r, err := newCertReloader(slog.New(slog.NewTextHandler(&logs, nil)), "gateway", "--http-tls-cert", "--http-tls-key", tlsFiles{Cert: p.cert, Key: p.key})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	r.now = func() time.Time { return clock }
	mtime := time.Now()
	// write replaces a file in place with a later modification time, as a
	// rotation some time after the last one does.
	write := func(path string, b []byte) {
		t.Helper()
		writeTestFile(t, path, b)
		mtime = mtime.Add(time.Second)
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	served := func() []byte {
		t.Helper()
		c, err := r.getCertificate(nil)
		if err != nil || c == nil {
			t.Fatalf("getCertificate = %v, %v", c, err)
		}
		return c.Certificate[0]
	}
	tick := func() { clock = clock.Add(certCheckInterval) }

	first := certDER(t, pki.CertFile)
	if !bytes.Equal(served(), first) {
		t.Fatal("not the loaded certificate")
	}
	certPEM, keyPEM := pki.ServerPair(t)
	write(p.key, keyPEM)
	write(p.cert, certPEM)
	if !bytes.Equal(served(), first) {
		t.Error("files read again before the check interval passed")
	}
	tick()
	second := certDER(t, p.cert)
	if !bytes.Equal(served(), second) {
		t.Fatal("rotated pair not served after the check interval")
	}

	// Broken rotations: each keeps the second certificate served.
	newCert, newKey := pki.ServerPair(t)
	for _, step := range []struct {
		name string
		do   func()
		want string
	}{
		{"half-written certificate", func() { write(p.cert, newCert[:len(newCert)/2]) }, "PEM"},
		{"certificate without its key", func() { write(p.cert, newCert) }, "does not match"},
		{"key missing", func() { _ = os.Remove(p.key) }, "no such file"},
	} {
		logs.Take()
		step.do()
		tick()
		if !bytes.Equal(served(), second) {
			t.Fatalf("%s: the previous certificate is no longer served", step.name)
		}
		tick()
		served()
		got := logs.String()
		if n := strings.Count(got, "level=ERROR"); n != 1 || !strings.Contains(got, "cert="+p.cert) || !strings.Contains(got, "key="+p.key) || !strings.Contains(got, step.want) {
			t.Errorf("%s: logged %d errors, want one naming the files and %q:\n%s", step.name, n, step.want, got)
		}
	}
	write(p.key, newKey)
	tick()
	if !bytes.Equal(served(), certDER(t, p.cert)) {
		t.Fatal("the pair is whole again, but not served")
	}
	if got := logs.String(); !strings.Contains(got, "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", got)
	}
}

// Outside dev, an admin API on a non-loopback address without TLS is
// logged as a warning (not refused: a TLS proxy may be in front).
func TestServeWarnsOfPlainAdminOutsideDev(t *testing.T) {
	for _, tt := range []struct {
		env, addr, role string
		tls             bool
		warn            bool
	}{
		{"staging", "0.0.0.0:8081", "all", false, true},
		{"staging", ":8081", "admin", false, true},
		{"staging", "10.1.2.3:8081", "admin", false, true},
		{"staging", "127.0.0.1:8081", "all", false, false},
		{"staging", "[::1]:8081", "all", false, false},
		{"staging", "localhost:8081", "all", false, false},
		{"staging", "0.0.0.0:8081", "all", true, false},
		{"staging", "0.0.0.0:8081", "node,gateway", false, false}, // no token on this listener
		{"dev", "0.0.0.0:8081", "all", false, false},
	} {
		cfg := serveConfig{Env: tt.env, Admin: tt.addr, Role: tt.role}
		if tt.tls {
			cfg.AdminTLS = tlsFiles{Cert: "c", Key: "k"}
		}
		var logs bytes.Buffer
		cfg.warnPlainAdmin(slog.New(slog.NewTextHandler(&logs, nil)))
		if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "clear text"); got != tt.warn {
			t.Errorf("%+v: warned %v, want %v: %s", tt, got, tt.warn, logs.String())
		}
	}

	// serve itself warns at start.
	b := startCmd(t, serveArgs(t, "--env", "staging", "--role", "admin", "--admin-token", "t", "--admin", "0.0.0.0:0")...)
	b.waitLine(t, readyLine)
	if got := b.stderr.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "admin token crosses the network in clear text") {
		t.Errorf("stderr lacks the clear-text warning:\n%s", got)
	}
}

// The admin client refuses --admin-ca with an http:// URL (the calls would
// not be protected) and a CA file without certificates.
func TestAdminCAUsageErrors(t *testing.T) {
	pki := testutil.NewPKI(t)
	empty := filepath.Join(t.TempDir(), "empty.pem")
	writeTestFile(t, empty, []byte("not a certificate\n"))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin", "http://127.0.0.1:1", "--admin-ca", pki.CAFile}, "https:// admin URLs only"},
		{[]string{"--admin", "https://127.0.0.1:1", "--admin-ca", empty}, "no PEM certificate"},
		{[]string{"--admin", "https://127.0.0.1:1", "--admin-ca", empty + ".missing"}, "no such file"},
	} {
		code, _, errOut := runCmd(t, append([]string{"ls"}, tt.args...)...)
		if code != 2 || !strings.Contains(errOut, "--admin-ca") || !strings.Contains(errOut, tt.want) {
			t.Errorf("ls %v: exit %d, stderr %q; want 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
}

// Failed TLS handshakes (a plain-HTTP probe here) are logged at DEBUG, not
// WARN: a public listener sees them by the thousand; the server's other
// error lines stay at WARN.
func TestServerErrorLogDemotesHandshakeErrors(t *testing.T) {
	var buf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pki := testutil.NewPKI(t)
	srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: pki.ServerTLS.Clone(), ErrorLog: serverErrorLog(log)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = serveHTTP(srv, ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	_, _ = io.ReadAll(c) // until the server closes the connection
	c.Close()
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(buf.String(), "TLS handshake error") {
			return errors.New("no handshake error logged yet")
		}
		return nil
	})
	for line := range strings.Lines(buf.String()) {
		if strings.Contains(line, "TLS handshake error") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("handshake error not at DEBUG: %s", line)
		}
	}

	var other testutil.SyncBuffer
	serverErrorLog(slog.New(slog.NewTextHandler(&other, nil))).Printf("http: panic serving 127.0.0.1:1: boom")
	if !strings.Contains(other.String(), "level=WARN") || !strings.Contains(other.String(), "boom") {
		t.Errorf("another server error line = %q, want it at WARN", other.String())
	}
}

// SIGHUP, which operators' tools send to make a daemon reload, checks the
// certificate files at once (here: a rotation picked up by a listener no
// client has touched since) and never ends the process, its default
// action.
func TestServeReloadsCertificatesOnSIGHUP(t *testing.T) {
	pki := testutil.NewPKI(t)
	pair := copyPair(t, pki)
	p := startProcess(t, serveArgs(t, "--role", "admin", "--admin-tls-cert", pair.cert, "--admin-tls-key", pair.key)...)
	p.waitLine(t, adminTLSLine)

	p.signal(t, syscall.SIGHUP)
	p.waitLogged(t, "SIGHUP: TLS certificate files unchanged")

	certPEM, keyPEM := pki.ServerPair(t)
	writeTestFile(t, pair.key, keyPEM)
	writeTestFile(t, pair.cert, certPEM)
	p.signal(t, syscall.SIGHUP)
	p.waitLogged(t, "TLS certificate reloaded")

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\nstderr:\n%s", code, p.stderr.String())
	}
}
