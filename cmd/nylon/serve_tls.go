package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// certCheckInterval is how often, at most, a TLS listener looks at its
// certificate files for a rotation: two stats, done by the first handshake
// after the interval, so an idle listener does nothing and a busy one no
// more than once a second.
const certCheckInterval = time.Second

// tlsFiles are one listener's --<listener>-tls-cert and --<listener>-tls-key:
// both, for HTTPS, or neither, for plain HTTP.
type tlsFiles struct {
	Cert string
	Key  string
}

// register defines --<name>-tls-cert and --<name>-tls-key with the
// variables NYLON_<ENV>_TLS_CERT and NYLON_<ENV>_TLS_KEY; what names the
// listener in the help text.
func (t *tlsFiles) register(f *flagSet, name, env, what string) {
	f.String(&t.Cert, name+"-tls-cert", "file", "NYLON_"+env+"_TLS_CERT", "",
		"PEM certificate chain, the server's first, that "+what+" serves HTTPS with; needs --"+name+"-tls-key. Re-read when the file changes")
	f.String(&t.Key, name+"-tls-key", "file", "NYLON_"+env+"_TLS_KEY", "",
		"PEM private key of --"+name+"-tls-cert")
}

func (t tlsFiles) enabled() bool { return t.Cert != "" }

// validate checks that both files or neither are given; name is the
// listener's flag, "http" or "admin".
func (t tlsFiles) validate(name, env string) error {
	switch {
	case t.Cert != "" && t.Key == "":
		return fmt.Errorf("--%s-tls-cert: needs --%s-tls-key (NYLON_%s_TLS_KEY) too: give both or neither", name, name, env)
	case t.Key != "" && t.Cert == "":
		return fmt.Errorf("--%s-tls-key: needs --%s-tls-cert (NYLON_%s_TLS_CERT) too: give both or neither", name, name, env)
	}
	return nil
}

// serveTLS is the TLS configuration of serve's two listeners; nil for a
// listener that serves plain HTTP.
type serveTLS struct {
	HTTP  *tls.Config
	Admin *tls.Config

	reloaders []*certReloader
}

// loadTLS loads the certificates of the listeners this process runs (the
// gateway's only with role gateway, as --gateway-config), so a file that
// does not load stops serve before anything starts. Call Validate first.
func (c *serveConfig) loadTLS(log *slog.Logger) (serveTLS, error) {
	var out serveTLS
	if c.HTTPTLS.enabled() && slices.Contains(c.roles(), roleGateway) {
		r, err := newCertReloader(log, "gateway", "--http-tls-cert", "--http-tls-key", c.HTTPTLS)
		if err != nil {
			return serveTLS{}, err
		}
		out.HTTP = r.tlsConfig()
		out.reloaders = append(out.reloaders, r)
	}
	if c.AdminTLS.enabled() {
		r, err := newCertReloader(log, "admin", "--admin-tls-cert", "--admin-tls-key", c.AdminTLS)
		if err != nil {
			return serveTLS{}, err
		}
		out.Admin = r.tlsConfig()
		out.reloaders = append(out.reloaders, r)
	}
	return out, nil
}

// checkNow checks every listener's certificate files at once (SIGHUP,
// see reloadOnHangup); false when no listener has TLS.
func (t serveTLS) checkNow() bool {
	for _, r := range t.reloaders {
		r.checkNow()
	}
	return len(t.reloaders) > 0
}

// warnPlainAdmin logs a warning when, outside --env dev, the admin API
// listens on an address other machines reach without TLS: its bearer token
// then crosses the network in clear text. Only a warning, as a proxy in
// front that terminates TLS is a sound set-up this process cannot see.
func (c *serveConfig) warnPlainAdmin(log *slog.Logger) {
	if c.Env == natsconn.DevEnv || c.AdminTLS.enabled() || !slices.Contains(c.roles(), roleAdmin) {
		return
	}
	host, _, err := net.SplitHostPort(c.Admin)
	if err != nil || isLoopbackHost(host) {
		return
	}
	log.Warn("admin API listens on a non-loopback address without TLS: the admin token crosses the network in clear text; "+
		"give --admin-tls-cert and --admin-tls-key, or keep it behind a proxy that terminates TLS",
		"addr", c.Admin, "env", c.Env)
}

// serveHTTP serves srv on ln: HTTPS when srv has a TLS config, plain HTTP
// otherwise. HTTPS offers HTTP/2 and HTTP/1.1 by ALPN, as net/http does;
// WebSocket upgrades stay on HTTP/1.1, as the server does not announce
// RFC 8441's extended CONNECT, so browsers and coder/websocket open an
// HTTP/1.1 connection for them.
func serveHTTP(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// serverErrorLog is the ErrorLog of serve's http.Servers: their lines at
// WARN, but failed TLS handshakes at DEBUG. On a listener the internet
// reaches, scanners, plain-HTTP probes and clients that do not trust the
// certificate fail handshakes by the thousand, each the client's problem,
// and at WARN they would bury what is the server's.
func serverErrorLog(l *slog.Logger) *log.Logger { return log.New(errorLogWriter{l}, "", 0) }

type errorLogWriter struct{ log *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// scheme is the URL scheme of a listener with TLS config cfg, for the lines
// serve prints. Not read from the http.Server: Serve sets its TLSConfig
// when it configures HTTP/2, even for plain HTTP.
func scheme(cfg *tls.Config) string {
	if cfg != nil {
		return "https"
	}
	return "http"
}

// isLoopbackHost tells whether a listen host is reachable from this
// machine only; the empty host listens on every interface.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// certReloader serves a listener's certificate and re-reads its files when
// they change, as cert-manager and certbot replace them: the first
// handshake after certCheckInterval stats both files and loads them again
// if either changed. A pair that does not load (a half-written file, a key
// that is not the certificate's yet) leaves the previous certificate
// served and is logged once as an error; it is tried again at every check
// until it loads.
type certReloader struct {
	log               *slog.Logger
	listener          string // "gateway" or "admin", for the log
	certFlag, keyFlag string // "--http-tls-cert", for errors
	certFile, keyFile string
	now               func() time.Time
	checkEvery        time.Duration

	mu                sync.Mutex
	cert              *tls.Certificate
	certStat, keyStat os.FileInfo // of the pair served; nil after a failed try
	checked           time.Time
	lastErr           string // logged already; "" after a load that worked
}

// newCertReloader loads the pair once: an error names the flags, the files
// and what is wrong with them.
func newCertReloader(log *slog.Logger, listener, certFlag, keyFlag string, files tlsFiles) (*certReloader, error) {
	r := &certReloader{
		log: log, listener: listener, certFlag: certFlag, keyFlag: keyFlag,
		certFile: files.Cert, keyFile: files.Key, now: time.Now, checkEvery: certCheckInterval,
	}
	cs, ks, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.certStat, r.keyStat, r.checked = cert, cs, ks, r.now()
	r.logLoaded("TLS certificate loaded", cert)
	return r, nil
}

// tlsConfig is the listener's TLS: TLS 1.2 at least, the certificate from
// r. net/http adds h2 and http/1.1 to NextProtos.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= r.checkEvery {
		r.checked = now
		r.reloadIfChanged()
	}
	return r.cert, nil
}

// checkNow checks the files at once, whatever the interval, and logs the
// outcome: a reload and a new failure log themselves, the rest is said
// here, so that whoever sent SIGHUP finds an answer in the log.
func (r *certReloader) checkNow() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked = r.now()
	before, beforeErr := r.cert, r.lastErr
	r.reloadIfChanged()
	switch {
	case r.cert != before, r.lastErr != beforeErr:
	case r.lastErr != "":
		r.log.Error("SIGHUP: TLS certificate files still do not load; serving the previous certificate",
			"listener", r.listener, "cert", r.certFile, "key", r.keyFile, "err", r.lastErr)
	default:
		r.log.Info("SIGHUP: TLS certificate files unchanged", "listener", r.listener, "cert", r.certFile)
	}
}

// reloadIfChanged loads the files again when either changed since the
// pair served was loaded, or the last try failed. The files are stat'ed
// before they are read, so a change while they are read is seen at the
// next check. Called with r.mu held.
func (r *certReloader) reloadIfChanged() {
	cs, ks, err := r.stat()
	if err != nil {
		r.failed(err)
		return
	}
	if !changed(r.certStat, cs) && !changed(r.keyStat, ks) {
		r.lastErr = "" // a file that was missing for a moment is back
		return
	}
	cert, err := r.load()
	if err != nil {
		// Tried again at every check until the pair loads: the writer
		// may finish within the same modification time.
		r.certStat, r.keyStat = nil, nil
		r.failed(err)
		return
	}
	r.cert, r.certStat, r.keyStat, r.lastErr = cert, cs, ks, ""
	r.logLoaded("TLS certificate reloaded", cert)
}

// failed logs err once: the check runs every second, the files may stay
// broken for long.
func (r *certReloader) failed(err error) {
	if err.Error() == r.lastErr {
		return
	}
	r.lastErr = err.Error()
	r.log.Error("TLS certificate rotation failed; serving the previous certificate until the files load",
		"listener", r.listener, "cert", r.certFile, "key", r.keyFile, "err", err)
}

func (r *certReloader) stat() (cert, key os.FileInfo, err error) {
	if cert, err = os.Stat(r.certFile); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", r.certFlag, err)
	}
	if key, err = os.Stat(r.keyFile); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", r.keyFlag, err)
	}
	return cert, key, nil
}

func (r *certReloader) load() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.certFlag, err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.keyFlag, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s %s and %s %s: %w", r.certFlag, r.certFile, r.keyFlag, r.keyFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.certFlag, r.certFile, err)
		}
	}
	return &cert, nil
}

// logLoaded logs the certificate's validity, and warns when it is not
// valid now: clients refuse it, but serving it is still what was asked.
func (r *certReloader) logLoaded(msg string, cert *tls.Certificate) {
	leaf := cert.Leaf
	attrs := []any{"listener", r.listener, "cert", r.certFile, "subject", leaf.Subject.String(),
		"dns_names", leaf.DNSNames, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
	if now := r.now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		r.log.Warn(msg+", but it is not valid now: clients will refuse it", attrs...)
		return
	}
	r.log.Info(msg, attrs...)
}

// changed tells whether a file is not the one stat'ed before: another
// inode (a rename over it, or Kubernetes' symlink swap of a secret
// volume), another modification time or size (written in place).
func changed(before, now os.FileInfo) bool {
	return before == nil || !os.SameFile(before, now) || !before.ModTime().Equal(now.ModTime()) || before.Size() != now.Size()
}
