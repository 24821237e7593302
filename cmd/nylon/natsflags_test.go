package main

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// Every field natsconn refuses is reported by the flag and variable that set
// it, by serve and by the client commands, as a usage error before anything
// starts or connects; a natsconn field without a flag here fails the test.
func TestNATSConfigErrorsNameTheFlag(t *testing.T) {
	// Fields no command sets: natsconn's defaults always pass.
	noFlag := []string{"reconnect_wait", "reconnect_jitter", "embedded.max_payload"}
	tests := []struct {
		field string // the natsconn field refused
		args  []string
		env   map[string]string
		want  string
	}{
		{field: "env", args: []string{"invoke", "hello", "--env", "a.b"}, want: `--env (NYLON_ENV): "a.b" must be one subject token`},
		{field: "env", args: []string{"dlq", "ls"}, env: map[string]string{"NYLON_ENV": "a b"}, want: "--env (NYLON_ENV): "},
		{field: "urls", args: []string{"serve", "--nats", "http://a:4222"}, want: `--nats (NYLON_NATS_URLS): http://a:4222: scheme "http"`},
		{field: "urls", args: []string{"invoke", "hello", "--nats", "nats://a:1,ftp://b"}, want: `--nats (NYLON_NATS_URLS): ftp://b: scheme`},
		{field: "tls.ca_file", args: []string{"serve", "--nats-ca", "ca.pem"},
			want: "--nats-ca (NYLON_NATS_CA): only used with external servers (set --nats or NYLON_NATS_URLS), the embedded server is anonymous"},
		{field: "tls.ca_file", args: []string{"invoke", "hello", "--env", "prod", "--nats-creds", "u.creds"},
			want: `--nats-ca (NYLON_NATS_CA): env "prod" requires TLS to NATS: set it, or use only tls:// or wss:// URLs in --nats or NYLON_NATS_URLS`},
		{field: "tls.ca_file", args: []string{"serve", "--env", "prod", "--nats", "nats://a:1", "--nats-creds", "u.creds"},
			want: `refusing to start: --nats-ca (NYLON_NATS_CA): env "prod" requires TLS to NATS`},
		{field: "tls.cert_file", args: []string{"serve", "--nats-cert", "c.pem"}, want: "--nats-cert (NYLON_NATS_CERT): only used with external servers"},
		{field: "tls.cert_file", args: []string{"invoke", "hello", "--nats-cert", "c.pem"},
			want: "--nats-cert (NYLON_NATS_CERT): set without --nats-key or NYLON_NATS_KEY"},
		{field: "tls.key_file", args: []string{"dlq", "ls", "--nats-key", "k.pem"},
			want: "--nats-key (NYLON_NATS_KEY): set without --nats-cert or NYLON_NATS_CERT"},
		{field: "nkey_seed_file", args: []string{"serve", "--nats-nkey", "u.nk"}, want: "--nats-nkey (NYLON_NATS_NKEY): only used with external servers"},
		{field: "nkey_seed_file", args: []string{"dlq", "replay", "7", "--nats-nkey", "u.nk", "--nats-creds", "u.creds"},
			want: "--nats-nkey (NYLON_NATS_NKEY): set together with --nats-creds or NYLON_NATS_CREDS"},
		{field: "nkey_seed_file", args: []string{"invoke", "hello", "--env", "prod", "--nats", "tls://a:1", "--nats-token", "t"},
			want: `--nats-nkey (NYLON_NATS_NKEY): env "prod" requires NATS credentials: an nkey seed file here or a creds file (--nats-creds or NYLON_NATS_CREDS)`},
		{field: "creds_file", args: []string{"serve", "--nats-creds", "/x"},
			want: "--nats-creds (NYLON_NATS_CREDS): only used with external servers (set --nats or NYLON_NATS_URLS), the embedded server is anonymous"},
		{field: "creds_file", args: []string{"serve"}, env: map[string]string{"NYLON_NATS_CREDS": "/x"}, want: "--nats-creds (NYLON_NATS_CREDS): only used"},
		{field: "user", args: []string{"serve", "--nats-user", "u"}, want: "--nats-user (NYLON_NATS_USER): only used with external servers"},
		{field: "password", args: []string{"serve", "--nats-password", "p"}, want: "--nats-password (NYLON_NATS_PASSWORD): only used"},
		{field: "password", args: []string{"invoke", "hello"}, env: map[string]string{"NYLON_NATS_PASSWORD": "p"},
			want: "--nats-password (NYLON_NATS_PASSWORD): set without --nats-user or NYLON_NATS_USER"},
		{field: "token", args: []string{"serve", "--nats-token", "t"}, want: "--nats-token (NYLON_NATS_TOKEN): only used"},
		{field: "token", args: []string{"invoke", "hello", "--nats-token", "t", "--nats-user", "u"},
			want: "--nats-token (NYLON_NATS_TOKEN): set together with --nats-user or NYLON_NATS_USER"},
		{field: "embedded.listen", args: []string{"serve", "--nats-listen", "nowhere"}, want: `--nats-listen (NYLON_NATS_LISTEN): "nowhere"`},
		{field: "embedded.listen", args: []string{"serve", "--env", "prod", "--admin-token", "a", "--nats-listen", "0.0.0.0:-1"},
			want: `refusing to start: --nats-listen (NYLON_NATS_LISTEN): "0.0.0.0:-1" is not a loopback address`},
		// serve checks --data before natsconn sees it.
		{field: "embedded.data_dir", args: []string{"serve", "--data", ""}, want: "--data: empty"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.field] = true
		t.Run(tt.field+" "+strings.Join(tt.args, " ")+mapString(tt.env), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			data := filepath.Join(t.TempDir(), "data")
			if args[0] == "serve" {
				args = append([]string{"serve", "--data", data, "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, args[1:]...)
			}
			code, out, errOut := runCmd(t, args...)
			if code != 2 || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "--help' for usage") {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tt.want)
			}
			if strings.Contains(errOut, "invalid nats config") || strings.Contains(errOut, tt.field+":") {
				t.Errorf("stderr %q says natsconn's field names; want the flags", errOut)
			}
			if args[0] == "serve" {
				assertNothingStarted(t, args, out, data)
			}
		})
	}
	mapped := natsFieldFlags()
	for _, f := range natsconn.Fields() {
		_, hasFlag := mapped[f]
		switch {
		case slices.Contains(noFlag, f):
			if hasFlag {
				t.Errorf("field %q has flag %v but is listed as set by none", f, mapped[f])
			}
		case !hasFlag:
			t.Errorf("natsconn field %q has no flag in natsFieldFlags", f)
		case !covered[f]:
			t.Errorf("natsconn field %q (%v) has no test case", f, mapped[f])
		}
	}
	for _, f := range slices.Sorted(maps.Keys(mapped)) {
		if !slices.Contains(natsconn.Fields(), f) {
			t.Errorf("natsFieldFlags maps %q, which natsconn does not know", f)
		}
	}
}
