package natsconn

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	embedded := func(mut func(*Config)) Config {
		c := Config{Env: "dev", Embedded: Embedded{DataDir: "/tmp/x"}}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	external := func(mut func(*Config)) Config {
		c := Config{Env: "dev", URLs: []string{"nats://127.0.0.1:4222"}}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	secure := func(mut func(*Config)) Config {
		return external(func(c *Config) {
			c.Env = "prod"
			c.URLs = []string{"tls://nats.example:4222"}
			c.CredsFile = "/etc/nylon/user.creds"
			if mut != nil {
				mut(c)
			}
		})
	}
	tests := []struct {
		name     string
		cfg      Config
		field    string // substring the error must carry; "" = valid
		insecure bool
	}{
		{"embedded defaults", embedded(nil), "", false},
		{"embedded random port", embedded(func(c *Config) { c.Embedded.Listen = "127.0.0.1:-1" }), "", false},
		{"embedded port 0", embedded(func(c *Config) { c.Embedded.Listen = "localhost:0" }), "", false},
		{"embedded any interface in dev", embedded(func(c *Config) { c.Embedded.Listen = "0.0.0.0:4222" }), "", false},
		{"embedded loopback in prod", embedded(func(c *Config) { c.Env = "prod"; c.Embedded.Listen = "[::1]:4222" }), "", false},
		{"embedded public in prod", embedded(func(c *Config) { c.Env = "prod"; c.Embedded.Listen = "0.0.0.0:4222" }), "embedded.listen", true},
		{"embedded empty host in prod", embedded(func(c *Config) { c.Env = "prod"; c.Embedded.Listen = ":4222" }), "embedded.listen", true},
		{"embedded bad listen", embedded(func(c *Config) { c.Embedded.Listen = "4222" }), "embedded.listen", false},
		{"embedded bad port", embedded(func(c *Config) { c.Embedded.Listen = "127.0.0.1:http" }), "embedded.listen", false},
		{"embedded port too big", embedded(func(c *Config) { c.Embedded.Listen = "127.0.0.1:70000" }), "embedded.listen", false},
		{"embedded no data dir", embedded(func(c *Config) { c.Embedded.DataDir = "" }), "embedded.data_dir", false},
		{"embedded max payload", embedded(func(c *Config) { c.Embedded.MaxPayload = 128 << 20 }), "embedded.max_payload", false},
		{"embedded with token", embedded(func(c *Config) { c.Token = "s3cret" }), "token", false},
		{"embedded with ca", embedded(func(c *Config) { c.TLS.CAFile = "ca.pem" }), "tls.ca_file", false},
		{"no env", embedded(func(c *Config) { c.Env = "" }), "env", false},
		{"env with dot", embedded(func(c *Config) { c.Env = "a.b" }), "env", false},
		{"negative wait", embedded(func(c *Config) { c.ReconnectWait = -1 }), "reconnect_wait", false},
		{"negative jitter", embedded(func(c *Config) { c.ReconnectJitter = -1 }), "reconnect_jitter", false},
		{"external plain dev", external(nil), "", false},
		{"external bare host", external(func(c *Config) { c.URLs = []string{"127.0.0.1:4222", " nats://b:4222 "} }), "", false},
		{"external bad scheme", external(func(c *Config) { c.URLs = []string{"http://a:4222"} }), "urls[0]", false},
		{"external empty url", external(func(c *Config) { c.URLs = []string{"nats://a:1", ""} }), "urls[1]", false},
		{"external no host", external(func(c *Config) { c.URLs = []string{"nats://:4222"} }), "urls[0]", false},
		{"cert without key", external(func(c *Config) { c.TLS.CertFile = "c.pem" }), "tls", false},
		{"nkey and creds", external(func(c *Config) { c.NKeySeedFile = "a"; c.CredsFile = "b" }), "nkey_seed_file", false},
		{"password without user", external(func(c *Config) { c.Password = "p" }), "password", false},
		{"token and user", external(func(c *Config) { c.Token = "t"; c.User = "u" }), "token", false},
		{"prod secure creds", secure(nil), "", false},
		{"prod ca and nkey", secure(func(c *Config) {
			c.URLs = []string{"nats://a:4222"}
			c.TLS.CAFile = "ca.pem"
			c.CredsFile = ""
			c.NKeySeedFile = "user.nk"
		}), "", false},
		{"prod plaintext", secure(func(c *Config) { c.URLs = []string{"nats://a:4222"} }), "tls", true},
		{"prod mixed schemes", secure(func(c *Config) { c.URLs = []string{"tls://a:4222", "nats://b:4222"} }), "tls", true},
		{"prod no creds", secure(func(c *Config) { c.CredsFile = "" }), "credentials", true},
		{"prod token only", secure(func(c *Config) { c.CredsFile = ""; c.Token = "t" }), "credentials", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %q, want it to name %q", err, tt.field)
			}
			if got := errors.Is(err, ErrInsecure); got != tt.insecure {
				t.Errorf("errors.Is(%v, ErrInsecure) = %v, want %v", err, got, tt.insecure)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if !slices.Contains(Fields(), fe.Field) {
				t.Errorf("FieldError.Field = %q, not one of Fields() %v", fe.Field, Fields())
			}
		})
	}
}

// Reason says the fields it refers to by the caller's names, and keeps the
// wrapped reason's message.
func TestFieldErrorReason(t *testing.T) {
	upper := func(f string) string { return "<" + strings.ToUpper(f) + ">" }
	tests := []struct {
		name  string
		cfg   Config
		field string
		want  string
	}{
		{"embedded creds", Config{Env: "dev", CredsFile: "x", Embedded: Embedded{DataDir: "/d"}},
			"creds_file", "only used with external servers (set <URLS>), the embedded server is anonymous"},
		{"key without cert", Config{Env: "dev", URLs: []string{"a:1"}, TLS: TLS{KeyFile: "k"}},
			"tls.key_file", "set without <TLS.CERT_FILE>; mutual TLS needs both"},
		{"bad url", Config{Env: "dev", URLs: []string{"a:1", "http://b"}},
			"urls", `http://b: scheme "http" is not nats, tls, ws or wss`},
		{"prod plaintext", Config{Env: "prod", URLs: []string{"a:1"}, CredsFile: "c"},
			"tls.ca_file", `env "prod" requires TLS to NATS: set it, or use only tls:// or wss:// URLs in <URLS>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fe *FieldError
			if err := tt.cfg.Validate(); !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q", fe.Field, tt.field)
			}
			if got := fe.Reason(upper); got != tt.want {
				t.Errorf("Reason = %q\nwant     %q", got, tt.want)
			}
		})
	}
	// The index of a refused URL shows in Error, which says config names.
	err := Config{Env: "dev", URLs: []string{"a:1", ""}}.Validate()
	if want := "invalid nats config: urls[1]: empty url"; err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %q", err, want)
	}
}

func TestValidateDoesNotLeakPassword(t *testing.T) {
	c := Config{Env: "dev", URLs: []string{"http://user:hunter2@a:4222"}}
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Validate() = %v, want an error without the password", err)
	}
}

func TestRedactURLs(t *testing.T) {
	got := redactURLs([]string{"nats://tok@a:4222", "tls://u:p@b:4222", "c:4222"})
	want := "nats://xxxxx@a:4222,tls://xxxxx@b:4222,nats://c:4222"
	if got != want {
		t.Fatalf("redactURLs = %q, want %q", got, want)
	}
}
