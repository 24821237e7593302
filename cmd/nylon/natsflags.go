package main

import (
	"errors"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// natsFlags are the NATS connection flags, shared by every command that
// talks to NATS (serve now; invoke, dlq and bench later).
type natsFlags struct {
	URLs     []string
	Listen   string
	Creds    string
	NKey     string
	CA       string
	Cert     string
	Key      string
	User     string
	Password string
	Token    string
}

// register defines the flags; withEmbedded adds --nats-listen, which only
// commands that may start the embedded server (serve) have.
func (n *natsFlags) register(f *flagSet, withEmbedded bool) {
	usage := "NATS servers to connect to (comma-separated); empty: nats://127.0.0.1:4222 (the local serve)"
	if withEmbedded {
		usage = "NATS servers to connect to (comma-separated); empty starts an embedded server"
	}
	f.List(&n.URLs, "nats", "url,...", "NYLON_NATS_URLS", nil, usage)
	if withEmbedded {
		f.String(&n.Listen, "nats-listen", "addr", "NYLON_NATS_LISTEN", natsconn.DefaultListen, "client listen address of the embedded NATS server (port 0 or -1: random)")
	}
	f.String(&n.Creds, "nats-creds", "file", "NYLON_NATS_CREDS", "", "NATS JWT user credentials file (.creds)")
	f.String(&n.NKey, "nats-nkey", "file", "NYLON_NATS_NKEY", "", "NATS nkey user seed file")
	f.String(&n.CA, "nats-ca", "file", "NYLON_NATS_CA", "", "CA certificate(s) (PEM) that verify the NATS servers; turns TLS on")
	f.String(&n.Cert, "nats-cert", "file", "NYLON_NATS_CERT", "", "client certificate (PEM) for mutual TLS; needs --nats-key")
	f.String(&n.Key, "nats-key", "file", "NYLON_NATS_KEY", "", "client private key (PEM) for mutual TLS")
	f.String(&n.User, "nats-user", "name", "NYLON_NATS_USER", "", "NATS user name (dev only; with --nats-password)")
	f.String(&n.Password, "nats-password", "secret", "NYLON_NATS_PASSWORD", "", "NATS password (prefer the variable: flags show in ps)")
	f.String(&n.Token, "nats-token", "secret", "NYLON_NATS_TOKEN", "", "NATS auth token (dev only; prefer the variable)")
}

// config builds the natsconn configuration. dataDir holds the embedded
// server's JetStream store (in a "jetstream" folder inside it).
func (n natsFlags) config(env, name, dataDir string) natsconn.Config {
	return natsconn.Config{
		Env:          env,
		Name:         name,
		URLs:         n.URLs,
		TLS:          natsconn.TLS{CAFile: n.CA, CertFile: n.Cert, KeyFile: n.Key},
		NKeySeedFile: n.NKey,
		CredsFile:    n.Creds,
		User:         n.User,
		Password:     n.Password,
		Token:        n.Token,
		Embedded:     natsconn.Embedded{Listen: n.Listen, DataDir: dataDir},
	}
}

// natsFieldFlag is the flag and variable that set a natsconn.Config field.
type natsFieldFlag struct{ flag, env string }

// natsFieldFlags maps each natsconn.Config field a flag sets to that flag.
// Fields no command sets (the reconnect timing, the embedded max_payload)
// are not here.
func natsFieldFlags() map[string]natsFieldFlag {
	return map[string]natsFieldFlag{
		"env":               {"env", "NYLON_ENV"},
		"urls":              {"nats", "NYLON_NATS_URLS"},
		"tls.ca_file":       {"nats-ca", "NYLON_NATS_CA"},
		"tls.cert_file":     {"nats-cert", "NYLON_NATS_CERT"},
		"tls.key_file":      {"nats-key", "NYLON_NATS_KEY"},
		"nkey_seed_file":    {"nats-nkey", "NYLON_NATS_NKEY"},
		"creds_file":        {"nats-creds", "NYLON_NATS_CREDS"},
		"user":              {"nats-user", "NYLON_NATS_USER"},
		"password":          {"nats-password", "NYLON_NATS_PASSWORD"},
		"token":             {"nats-token", "NYLON_NATS_TOKEN"},
		"embedded.listen":   {"nats-listen", "NYLON_NATS_LISTEN"},
		"embedded.data_dir": {"data", "NYLON_DATA"},
	}
}

// natsFlagError says a refusal of natsconn.Config.Validate by the flags and
// variables the user gives, not by natsconn's field names: "--nats-creds
// (NYLON_NATS_CREDS): only used with external servers (set --nats or
// NYLON_NATS_URLS) ...". It still wraps err (ErrInvalidConfig, ErrInsecure).
func natsFlagError(err error) error {
	var fe *natsconn.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	flags := natsFieldFlags()
	subject := fe.Field
	if f, ok := flags[fe.Field]; ok {
		subject = "--" + f.flag + " (" + f.env + ")"
	}
	reason := fe.Reason(func(field string) string {
		if f, ok := flags[field]; ok {
			return "--" + f.flag + " or " + f.env
		}
		return field
	})
	return &renamedError{msg: subject + ": " + reason, err: err}
}

// renamedError shows msg in place of err's own message and wraps err.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }
