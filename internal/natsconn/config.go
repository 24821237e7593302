package natsconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Connect to zero fields of Config.
const (
	// DefaultListen is where the embedded server accepts clients.
	DefaultListen = "127.0.0.1:4222"
	// DefaultReconnectWait is the pause between reconnect attempts.
	DefaultReconnectWait = 2 * time.Second
	// DefaultMaxPayload is the embedded server's max_payload: 8 MiB, the
	// size NATS recommends as an upper bound, so request and response bodies
	// of a few MiB fit in one message. External servers keep their own.
	DefaultMaxPayload = 8 << 20
	// DevEnv is the only environment in which plaintext, anonymous NATS is
	// accepted (DESIGN.md "Security").
	DevEnv = "dev"
)

// maxPayloadLimit is nats-server's own ceiling for max_payload (64 MiB).
const maxPayloadLimit = 64 << 20

var (
	// ErrInvalidConfig is wrapped by every error Config.Validate returns.
	ErrInvalidConfig = errors.New("invalid nats config")
	// ErrInsecure is wrapped (besides ErrInvalidConfig) when a configuration
	// outside the dev environment lacks TLS or NATS credentials.
	ErrInsecure = errors.New("insecure nats config")
)

// Config says how to reach NATS. With URLs it connects to existing servers;
// without, it starts an embedded nats-server with JetStream. It is a plain
// value: Validate checks it once and Connect fills in defaults.
type Config struct {
	// Env is the deployment environment ("dev", "staging", "prod", ...).
	// Outside DevEnv external servers need TLS and NATS credentials, and an
	// embedded server must listen on loopback. Required.
	Env string
	// Name is the client connection name shown by the server (nats server
	// report connections). Optional.
	Name string
	// URLs are the servers to connect to (nats://, tls://, ws://, wss:// or
	// bare host:port). Empty starts an embedded server.
	URLs []string

	// TLS material for external servers. Setting any file turns TLS on; a
	// tls:// URL turns it on with the system roots.
	TLS TLS
	// NKeySeedFile is a file holding a user nkey seed ("SU...").
	NKeySeedFile string
	// CredsFile is a JWT user credentials file (.creds).
	CredsFile string
	// User and Password authenticate with a username and password.
	User, Password string
	// Token authenticates with a bearer token.
	Token string

	// MaxReconnects bounds reconnect attempts; 0 or negative reconnects
	// forever, since a platform process should outlive NATS restarts.
	MaxReconnects int
	// ReconnectWait is the pause between attempts; 0 means DefaultReconnectWait.
	ReconnectWait time.Duration
	// ReconnectJitter is an upper bound of random delay added to
	// ReconnectWait (for TLS and plaintext alike); 0 keeps nats.go's default.
	ReconnectJitter time.Duration

	// Embedded configures the server started when URLs is empty.
	Embedded Embedded
}

// TLS holds PEM files for TLS to external servers.
type TLS struct {
	CAFile   string // roots that verify the server; empty uses the system roots
	CertFile string // client certificate (mutual TLS); requires KeyFile
	KeyFile  string // client key; requires CertFile
}

// Embedded configures the in-process nats-server.
type Embedded struct {
	// Listen is the host:port the server accepts clients on, so that the
	// nats CLI and other processes can connect; DefaultListen when empty.
	// Port 0 or -1 picks a free port (read it back from Conn.ClientURL).
	Listen string
	// DataDir is the JetStream store directory; nats-server keeps its
	// files in a "jetstream" folder inside it. Required.
	DataDir string
	// ServerName names the server; empty lets nats-server use its id.
	ServerName string
	// MaxPayload is the largest message accepted; 0 means DefaultMaxPayload.
	MaxPayload int32
}

// IsEmbedded reports whether c starts an embedded server (no URLs).
func (c Config) IsEmbedded() bool { return len(c.URLs) == 0 }

// Validate checks c once; every error is a *FieldError, wraps
// ErrInvalidConfig and names the field. The security rule of DESIGN.md is
// enforced here too (wrapping ErrInsecure): outside the dev environment,
// external servers need TLS and an nkey seed or creds file, and an embedded
// server must listen on loopback.
func (c Config) Validate() error {
	if err := validateEnv(c.Env); err != nil {
		return invalid(fieldEnv, err)
	}
	if c.ReconnectWait < 0 {
		return invalid(fieldReconnectWait, fmt.Errorf("%v is negative", c.ReconnectWait))
	}
	if c.ReconnectJitter < 0 {
		return invalid(fieldReconnectJitter, fmt.Errorf("%v is negative", c.ReconnectJitter))
	}
	if c.IsEmbedded() {
		return c.validateEmbedded()
	}
	return c.validateExternal()
}

func (c Config) validateEmbedded() error {
	// Credentials and TLS only make sense towards external servers; the
	// embedded server is anonymous. Silently ignoring them would leave an
	// operator believing NATS is protected.
	for _, f := range []struct{ name, val string }{
		{fieldTLSCAFile, c.TLS.CAFile}, {fieldTLSCertFile, c.TLS.CertFile}, {fieldTLSKeyFile, c.TLS.KeyFile},
		{fieldNKeySeedFile, c.NKeySeedFile}, {fieldCredsFile, c.CredsFile},
		{fieldUser, c.User}, {fieldPassword, c.Password}, {fieldToken, c.Token},
	} {
		if f.val != "" {
			return refused(f.name, "only used with external servers (set ", ref(fieldURLs), "), the embedded server is anonymous")
		}
	}
	e := c.Embedded
	host, _, err := splitListen(e.Listen)
	if err != nil {
		return invalid(fieldListen, err)
	}
	if c.Env != DevEnv && !isLoopback(host) {
		return insecure(fieldListen, fmt.Sprintf("%q is not a loopback address; outside env %q the anonymous embedded server may only listen on loopback; use external servers (set ", e.Listen, DevEnv),
			ref(fieldURLs), ") with TLS and credentials")
	}
	if e.DataDir == "" {
		return invalid(fieldDataDir, errors.New("empty; JetStream needs a store directory"))
	}
	if e.MaxPayload < 0 || e.MaxPayload > maxPayloadLimit {
		return invalid(fieldMaxPayload, fmt.Errorf("%d is outside 0..%d", e.MaxPayload, maxPayloadLimit))
	}
	return nil
}

func (c Config) validateExternal() error {
	allTLS := true
	for i, raw := range c.URLs {
		u, err := parseServerURL(raw)
		if err != nil {
			fe := invalid(fieldURLs, err)
			fe.label = fmt.Sprintf("%s[%d]", fieldURLs, i)
			return fe
		}
		if u.Scheme != "tls" && u.Scheme != "wss" {
			allTLS = false
		}
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		return refused(fieldTLSCertFile, "set without ", ref(fieldTLSKeyFile), "; mutual TLS needs both")
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		return refused(fieldTLSKeyFile, "set without ", ref(fieldTLSCertFile), "; mutual TLS needs both")
	}
	if c.NKeySeedFile != "" && c.CredsFile != "" {
		return refused(fieldNKeySeedFile, "set together with ", ref(fieldCredsFile), "; give one of them")
	}
	if c.Password != "" && c.User == "" {
		return refused(fieldPassword, "set without ", ref(fieldUser))
	}
	if c.Token != "" && c.User != "" {
		return refused(fieldToken, "set together with ", ref(fieldUser), "; give a token or a user and password, not both")
	}
	if c.Env == DevEnv {
		return nil
	}
	tlsOn := allTLS || c.TLS.CAFile != "" || c.TLS.CertFile != ""
	if !tlsOn {
		return insecure(fieldTLSCAFile, fmt.Sprintf("env %q requires TLS to NATS: set it, or use only tls:// or wss:// URLs in ", c.Env), ref(fieldURLs))
	}
	if c.NKeySeedFile == "" && c.CredsFile == "" {
		return insecure(fieldNKeySeedFile, fmt.Sprintf("env %q requires NATS credentials: an nkey seed file here or a creds file (", c.Env), ref(fieldCredsFile),
			"); user/password and token are dev-only")
	}
	return nil
}

// The names of the fields Validate refuses, as in a YAML configuration.
const (
	fieldEnv             = "env"
	fieldURLs            = "urls"
	fieldTLSCAFile       = "tls.ca_file"
	fieldTLSCertFile     = "tls.cert_file"
	fieldTLSKeyFile      = "tls.key_file"
	fieldNKeySeedFile    = "nkey_seed_file"
	fieldCredsFile       = "creds_file"
	fieldUser            = "user"
	fieldPassword        = "password"
	fieldToken           = "token"
	fieldReconnectWait   = "reconnect_wait"
	fieldReconnectJitter = "reconnect_jitter"
	fieldListen          = "embedded.listen"
	fieldDataDir         = "embedded.data_dir"
	fieldMaxPayload      = "embedded.max_payload"
)

// Fields returns the name of every field a FieldError can carry, so a
// caller that maps them to names of its own (command-line flags) can check
// that it knows them all.
func Fields() []string {
	return []string{
		fieldEnv, fieldURLs, fieldTLSCAFile, fieldTLSCertFile, fieldTLSKeyFile,
		fieldNKeySeedFile, fieldCredsFile, fieldUser, fieldPassword, fieldToken,
		fieldReconnectWait, fieldReconnectJitter, fieldListen, fieldDataDir, fieldMaxPayload,
	}
}

// FieldError is what Validate returns: one refused field and why. The
// reason may name other fields; Error says them all by their configuration
// names (see Fields), Reason by the caller's, so a command can speak of its
// flags while this package knows nothing of them.
type FieldError struct {
	// Field is the refused field's name, one of Fields(); a list element
	// (urls) is named by its list.
	Field string
	label string // Field as Error shows it, with an index for list elements; "" is Field
	// parts are the reason: text, a field reference, or a wrapped error
	// shown by its message.
	parts    []any
	insecure bool
}

// fieldRef is a part of a reason that names another field.
type fieldRef string

func ref(field string) fieldRef { return fieldRef(field) }

func invalid(field string, err error) *FieldError {
	return &FieldError{Field: field, parts: []any{err}}
}

func refused(field string, reason ...any) *FieldError {
	return &FieldError{Field: field, parts: reason}
}

func insecure(field string, reason ...any) *FieldError {
	return &FieldError{Field: field, parts: reason, insecure: true}
}

// Error reads "invalid nats config: [insecure nats config: ]field: reason".
func (e *FieldError) Error() string {
	prefix := ErrInvalidConfig.Error() + ": "
	if e.insecure {
		prefix += ErrInsecure.Error() + ": "
	}
	label := e.label
	if label == "" {
		label = e.Field
	}
	return prefix + label + ": " + e.Reason(func(f string) string { return f })
}

// Reason is why Field is refused, with the other fields it refers to said
// as name says them.
func (e *FieldError) Reason(name func(field string) string) string {
	var b strings.Builder
	for _, p := range e.parts {
		switch p := p.(type) {
		case fieldRef:
			b.WriteString(name(string(p)))
		case error:
			b.WriteString(p.Error())
		case string:
			b.WriteString(p)
		}
	}
	return b.String()
}

// Unwrap gives ErrInvalidConfig, ErrInsecure when the rule of DESIGN.md
// refused the field, and the errors the reason wraps.
func (e *FieldError) Unwrap() []error {
	errs := []error{ErrInvalidConfig}
	if e.insecure {
		errs = append(errs, ErrInsecure)
	}
	for _, p := range e.parts {
		if err, ok := p.(error); ok {
			errs = append(errs, err)
		}
	}
	return errs
}

// validateEnv accepts one subject token: env is part of every subject.
func validateEnv(env string) error {
	if env == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(env, ".*> \t\r\n") {
		return fmt.Errorf("%q must be one subject token (no '.', '*', '>' or whitespace)", env)
	}
	return nil
}

// parseServerURL accepts what nats.go accepts: a URL with a nats, tls, ws
// or wss scheme, or a bare host:port.
func parseServerURL(raw string) (*url.URL, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return nil, errors.New("empty url")
	}
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse echoes the input, which may carry a password.
		return nil, errors.New("not a valid url")
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return nil, fmt.Errorf("%s: scheme %q is not nats, tls, ws or wss", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s: no host", u.Redacted())
	}
	return u, nil
}

// splitListen parses an embedded listen address; an empty one is DefaultListen.
// Port 0 and -1 both mean a random port.
func splitListen(listen string) (host string, port int, err error) {
	if listen == "" {
		listen = DefaultListen
	}
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", listen, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < -1 || n > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not a number in -1..65535", listen, p)
	}
	return h, n, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
