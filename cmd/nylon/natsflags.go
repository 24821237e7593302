package main

import (
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
