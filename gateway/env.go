package gateway

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// EnvNATSURLs is the environment variable ApplyEnv reads: comma-separated
// NATS URLs that replace the servers of every messaging config, for
// container deployments where the config file is baked into the image.
const EnvNATSURLs = "NYLON_NATS_URLS"

// ApplyEnv applies environment overrides through lookup (os.LookupEnv in a
// program, a map in tests); the gateway reads no environment itself. It is
// for a program that embeds the gateway and dials with Connect: `nylon
// serve` does not call it, it reads NYLON_NATS_URLS as its own --nats, and
// configs without servers share that connection with its TLS and
// credentials.
//
// NYLON_NATS_URLS="nats://a:4222,nats://b:4222" replaces Servers of every
// messaging config (bare host:port entries are taken as nats://, as by
// `nylon serve --nats`); each config then dials them with its own tls and
// auth. An empty or unset variable changes nothing; a bad URL is an error
// wrapping ErrInvalidConfig. Call it before CheckSecurity, which checks the
// configs that dial servers.
//
//	cfg, err := gateway.LoadConfig("gateway.yaml")
//	if err == nil {
//		err = cfg.ApplyEnv(os.LookupEnv)
//	}
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	v, ok := lookup(EnvNATSURLs)
	if !ok || strings.TrimSpace(v) == "" {
		return nil
	}
	var urls []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if err := validateServerURL(s); err != nil {
			return &ConfigError{Path: "$" + EnvNATSURLs, Msg: err.Error()}
		}
		urls = append(urls, s)
	}
	for i := range c.Messaging {
		c.Messaging[i].Servers = append([]string(nil), urls...)
	}
	return nil
}

// CheckSecurity enforces DESIGN.md's rule for environments other than dev
// on every messaging config that dials its own servers (Servers set): it
// needs TLS (tls.enabled, or only tls:// and wss:// servers) and NATS
// credentials that prove an identity without sending a secret, an nkey
// seed or a creds file. A token or user/password is refused: those are
// dev-only, as for `nylon serve --nats`.
//
// A config without servers dials nothing: it calls over the connection the
// caller passes to New, which the caller has secured, so it needs no TLS or
// auth of its own. (Connect on such a config would dial nats.DefaultURL,
// unchecked; a caller that does so outside dev sets servers instead.)
//
// Run it before connecting, after ApplyEnv. Every problem is a *ConfigError
// wrapping ErrInvalidConfig; several are joined.
func (c *Config) CheckSecurity(env string) error {
	if env == "" || env == "dev" {
		return nil
	}
	var ps problems
	for i := range c.Messaging {
		m := &c.Messaging[i]
		if len(m.Servers) == 0 {
			continue
		}
		path := fmt.Sprintf("messaging[%d]", i)
		if !m.TLS.Enabled && !allTLS(m.Servers) {
			ps.add(path+".tls.enabled", "required outside dev (env %q) for a config with its own servers (or list only tls:// servers)", env)
		}
		a := &m.Auth
		switch {
		case !a.Enabled:
			ps.add(path+".auth.enabled", "required outside dev (env %q) for a config with its own servers, with an nkey seed or a creds_file", env)
		case a.NKey != "" || a.CredsFile != "":
		case a.Token != "":
			ps.add(path+".auth.token", "dev-only; env %q requires an nkey seed (auth.nkey) or a creds file (auth.creds_file)", env)
		case a.User != "" || a.Password != "":
			ps.add(path+".auth.user", "user/password is dev-only; env %q requires an nkey seed (auth.nkey) or a creds file (auth.creds_file)", env)
		default:
			ps.add(path+".auth", "env %q requires an nkey seed (auth.nkey) or a creds file (auth.creds_file)", env)
		}
	}
	return ps.err()
}

// allTLS reports whether every server URL is tls:// or wss://: nats.go
// then dials with TLS whatever tls.enabled says.
func allTLS(servers []string) bool {
	for _, s := range servers {
		scheme, _, ok := strings.Cut(s, "://")
		if !ok || (scheme != "tls" && scheme != "wss") {
			return false
		}
	}
	return true
}

// Options returns the nats.go options for the config's TLS and auth
// material, to dial with nats.Connect(strings.Join(m.Servers, ","), opts...).
func (m *MessagingConfig) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if m.TLS.Enabled {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
		if m.TLS.CAFile != "" {
			opts = append(opts, nats.RootCAs(m.TLS.CAFile))
		}
		if m.TLS.CertFile != "" {
			opts = append(opts, nats.ClientCert(m.TLS.CertFile, m.TLS.KeyFile))
		}
	}
	if !m.Auth.Enabled {
		return opts, nil
	}
	a := &m.Auth
	switch {
	case strings.HasPrefix(a.NKey, "SU"):
		kp, err := nkeys.FromSeed([]byte(a.NKey))
		if err != nil {
			return nil, fmt.Errorf("messaging[%s] auth.nkey: %w", m.Name, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("messaging[%s] auth.nkey: %w", m.Name, err)
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	case a.NKey != "":
		o, err := nats.NkeyOptionFromSeed(a.NKey)
		if err != nil {
			return nil, fmt.Errorf("messaging[%s] auth.nkey file: %w", m.Name, err)
		}
		opts = append(opts, o)
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	}
	return opts, nil
}

// Connect dials the config's servers (default nats.DefaultURL) with its TLS
// and auth options followed by extra.
//
// The connection reconnects for as long as it is open, also while the
// servers refuse its credentials, and is named "nylon gateway
// messaging:<name>" in the servers' connection lists; extra may say
// otherwise. nats.go's own defaults give up after 60 attempts (two minutes
// of an outage), and at the second refusal of the credentials in a row (a
// credential rotation, a JWT update on the servers, an operator's mistake
// fixed minutes later), closing the connection for good: every call of the
// messaging config would fail until the process restarted, while the
// process's other connections came back.
func (m *MessagingConfig) Connect(extra ...nats.Option) (*nats.Conn, error) {
	opts, err := m.Options()
	if err != nil {
		return nil, err
	}
	url := nats.DefaultURL
	if len(m.Servers) > 0 {
		url = strings.Join(m.Servers, ",")
	}
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.IgnoreAuthErrorAbort(), nats.Name("nylon gateway messaging:" + m.Name)}, opts...)
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("messaging[%s] connect %s: %w", m.Name, url, err)
	}
	return nc, nil
}
