package gateway_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/protocol"
)

func TestSeedConfigLoadsUnchanged(t *testing.T) {
	cfg, err := gateway.LoadConfig("testdata/seed.yaml")
	if err != nil {
		t.Fatalf("the seed's Extended Configuration Example must load as is: %v", err)
	}
	if len(cfg.Messaging) != 1 || len(cfg.Plugins) != 1 {
		t.Fatalf("config %+v", cfg)
	}
	m := cfg.Messaging[0]
	if m.Name != "my_nats" || m.Servers[0] != "nats://localhost:4222" || m.SubjectPrefix != "nylon.dev" ||
		m.RequestTimeoutMs != 800 || m.MaxInflight != 2048 || m.OverflowPolicy != gateway.OverflowQueue ||
		*m.Retry.Max != 2 || *m.Retry.BackoffMsInitial != 50 || *m.Retry.BackoffMsMax != 250 || m.TLS.Enabled || m.Auth.Enabled {
		t.Fatalf("messaging %+v", m)
	}
	p := cfg.Plugins[0]
	if p.Name != "auth_plugin" || p.Messaging != "my_nats" || p.Group != "auth_workers" || len(p.PerPhase) != 2 {
		t.Fatalf("plugin %+v", p)
	}
	for _, tc := range []struct {
		phase protocol.Phase
		want  gateway.Policy
	}{
		{protocol.PhaseRequestFilter, gateway.Policy{Timeout: 500 * time.Millisecond, OnError: gateway.OnErrorRetry, Retries: 2,
			Backoff: gateway.Backoff{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: gateway.JitterFull}, MaxPayload: protocol.DefaultMaxPayload}},
		{protocol.PhaseLogging, gateway.Policy{Timeout: 200 * time.Millisecond, OnError: gateway.OnErrorContinue, Retries: 2,
			Backoff: gateway.Backoff{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: gateway.JitterFull}, MaxPayload: protocol.DefaultMaxPayload}},
		{protocol.PhaseResponseFilter, gateway.Policy{Timeout: 800 * time.Millisecond, OnError: gateway.OnErrorEnd, Retries: 2,
			Backoff: gateway.Backoff{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: gateway.JitterFull}, MaxPayload: protocol.DefaultMaxPayload}},
	} {
		got, err := cfg.Policy("auth_plugin", tc.phase)
		if err != nil || got != tc.want {
			t.Errorf("%s policy = %+v, %v; want %+v", tc.phase, got, err, tc.want)
		}
	}

	// And a gateway runs on it, calling the listed phases of auth_plugin.
	e := newEnv(t)
	n := e.serve("auth_plugin", protocol.PhaseRequestFilter, func(c *call) answer { return end(body("seeded")) })
	cfg.Routes = []gateway.RouteConfig{{Path: "/", Function: "auth_plugin"}}
	gw, err := gateway.New(*cfg, e.nc, gateway.WithRegisterer(e.reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close(t.Context()) })
	if err := gw.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := getHandler(t, gw, "/"); r.Body != "seeded" || n.count() != 1 {
		t.Fatalf("response %d %q", r.Status, r.Body)
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := gateway.ParseConfig("d.yaml", []byte(`
messaging: [{name: m}]
plugins: [{name: p, messaging: m}]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := gateway.Policy{Timeout: 800 * time.Millisecond, OnError: gateway.OnErrorEnd, Retries: 0,
		Backoff: gateway.Backoff{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: gateway.JitterFull}, MaxPayload: 1 << 20}
	if got, _ := cfg.Policy("p", protocol.PhaseRequestFilter); got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	want.OnError = gateway.OnErrorContinue
	if got, _ := cfg.Policy("p", protocol.PhaseLogging); got != want {
		t.Fatalf("logging defaults %+v, want %+v", got, want)
	}
}

func TestConfigPolicyLayers(t *testing.T) {
	cfg, err := gateway.ParseConfig("l.yaml", []byte(`
messaging:
  - {name: m, request_timeout_ms: 300, retry: {max: 1, backoff_ms_initial: 10, backoff_ms_max: 40}}
plugins:
  - name: p
    messaging: m
    timeout_ms: 200
    on_error: continue
    retry: {max: 3, jitter: equal}
    per_phase:
      request_filter: {timeout_ms: 100, on_error: retry, retry: {backoff_ms_max: 80}, max_payload_bytes: 4096}
      logging: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := cfg.Policy("p", protocol.PhaseRequestFilter)
	want := gateway.Policy{Timeout: 100 * time.Millisecond, OnError: gateway.OnErrorRetry, Retries: 3,
		Backoff: gateway.Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, Jitter: gateway.JitterEqual}, MaxPayload: 4096}
	if got != want {
		t.Fatalf("request_filter %+v, want %+v", got, want)
	}
	got, _ = cfg.Policy("p", protocol.PhaseLogging)
	want = gateway.Policy{Timeout: 200 * time.Millisecond, OnError: gateway.OnErrorContinue, Retries: 3,
		Backoff: gateway.Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Jitter: gateway.JitterEqual}, MaxPayload: 1 << 20}
	if got != want {
		t.Fatalf("logging %+v, want %+v", got, want)
	}
}

func TestConfigErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", `messaging:
  - name: m
plugins:
  - name: p
    messaging: m
    per_phase:
      request_filter:
        timout_ms: 5
`, `c.yaml:8: field "timout_ms" not found in type gateway.PhasePolicy`},
		{"unknown top-level key", "messaging: []\nroutez: []\n", `c.yaml:2: field "routez" not found in type gateway.Config`},
		{"malformed yaml", "messaging:\n  - name: m\n    type: nats\n  bad\n", `c.yaml:4: could not find expected ':'`},
		{"duplicate key", "messaging:\n  - name: m\n    name: n\n", `c.yaml:3: mapping key "name" already defined at line 2`},
		{"wrong type", "messaging:\n  - name: m\n    max_inflight: lots\n", "c.yaml:3: cannot unmarshal"},
		{"bad on_error", `messaging: [{name: m}]
plugins:
  - name: p
    messaging: m
    per_phase:
      request_filter:
        on_error: retyr
`, `c.yaml:7: plugins[0].per_phase.request_filter.on_error: "retyr" is not one of continue|end|retry`},
		{"unknown messaging", "plugins:\n  - {name: p, messaging: nope}\n", `c.yaml:2: plugins[0].messaging: "nope" is not a messaging config`},
		{"unknown plugin in route", "messaging: [{name: m}]\nroutes:\n  - path: /x\n    upstream: http://127.0.0.1:1\n    plugins: [ghost]\n",
			`c.yaml:5: routes[0].plugins[0]: "ghost" is not a plugin`},
		{"bad overflow", "messaging:\n  - name: m\n    overflow_policy: drop\n", `c.yaml:3: messaging[0].overflow_policy: "drop" is not one of queue|reject|shed`},
		{"negative timeout", "messaging:\n  - name: m\n    request_timeout_ms: -5\n", `c.yaml:3: messaging[0].request_timeout_ms: -5 is negative`},
		{"negative backoff", "messaging:\n  - name: m\n    retry: {backoff_ms_initial: -1}\n", `messaging[0].retry.backoff_ms_initial: -1 is negative`},
		{"dlq replicas", "messaging:\n  - name: m\n    dlq:\n      replicas: 7\n", `c.yaml:4: messaging[0].dlq.replicas: 7 is out of range 1..5`},
		{"upstream and function", "messaging: [{name: m}]\nroutes:\n  - {path: /x, upstream: 'http://a', function: f}\n",
			`c.yaml:3: routes[0]: set upstream or function, not both`},
		{"neither origin", "routes:\n  - {path: /x}\n", `routes[0]: set upstream or function`},
		{"bad upstream url", "routes:\n  - path: /x\n    upstream: ftp://files\n", `c.yaml:3: routes[0].upstream: "ftp://files": scheme must be http or https`},
		{"bad pattern", "routes:\n  - {path: '/a/{b', upstream: 'http://a'}\n", `routes[0].path: pattern "/a/{b"`},
		{"pattern without slash", "routes:\n  - {path: 'a', upstream: 'http://a'}\n", `routes[0].path: pattern "a"`},
		{"unknown phase", "messaging: [{name: m}]\nplugins:\n  - name: p\n    messaging: m\n    per_phase:\n      request: {}\n",
			`c.yaml:6: plugins[0].per_phase.request: unknown phase`},
		{"duplicate plugin", "messaging: [{name: m}]\nplugins:\n  - {name: p, messaging: m}\n  - {name: p, messaging: m}\n",
			`c.yaml:4: plugins[1].name: "p" is defined twice`},
		{"bad server", "messaging:\n  - name: m\n    servers: ['http://x:4222']\n", `messaging[0].servers[0]: server url "http://x:4222": scheme "http"`},
		{"backoff order", "messaging:\n  - name: m\n    retry: {backoff_ms_initial: 500, backoff_ms_max: 100}\n",
			`messaging[0].retry.backoff_ms_initial: 500 is above backoff_ms_max 100`},
		{"bad function name", "messaging: [{name: m}]\nplugins:\n  - {name: Auth, messaging: m}\n", `plugins[0].name: invalid name`},
		{"bad jitter", "messaging:\n  - name: m\n    retry: {jitter: some}\n", `"some" is not one of full|equal|none`},
		{"bad method", "routes:\n  - {path: /x, upstream: 'http://a', methods: [FETCH]}\n", `routes[0].methods[0]: "FETCH" is not an HTTP method`},
		{"duplicate route", "routes:\n  - {path: /x, upstream: 'http://a'}\n  - {path: /x, upstream: 'http://b'}\n", `routes[1].path: * /x is already routed by routes[0]`},
		{"same route, other parameter name", "routes:\n  - {path: '/u/{id}', upstream: 'http://a'}\n  - {path: '/u/{name}', upstream: 'http://b'}\n", `routes[1].path: * /u/{name} is already routed by routes[0]`},
		{"auth without credential", "messaging:\n  - name: m\n    auth: {enabled: true}\n", `messaging[0].auth: enabled without nkey`},
		{"two documents", "messaging: []\n---\nroutes: []\n", `c.yaml:2: more than one YAML document`},
		{"header timeout of a function", "routes:\n  - {path: /x, function: f, response_header_timeout_ms: 5}\n",
			`routes[0].response_header_timeout_ms: only for an upstream origin`},
		{"negative header timeout", "routes:\n  - {path: /x, upstream: 'http://a', response_header_timeout_ms: -1}\n",
			`routes[0].response_header_timeout_ms: -1 is negative`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gateway.ParseConfig("c.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !errors.Is(err, gateway.ErrInvalidConfig) {
				t.Fatalf("%v does not wrap ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := gateway.ParseConfig("c.yaml", []byte(`
messaging:
  - {name: m, overflow_policy: nope, max_inflight: -1, dlq: {max_bytes: -1}}
plugins:
  - {name: p, messaging: x}
`))
	for _, want := range []string{"overflow_policy", "max_inflight", "dlq.max_bytes", `"x" is not a messaging config`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestApplyEnvOverridesServers(t *testing.T) {
	cfg, err := gateway.LoadConfig("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := cfg.ApplyEnv(lookup); err != nil || cfg.Messaging[0].Servers[0] != "nats://localhost:4222" {
		t.Fatalf("unset variable changed servers: %v %v", err, cfg.Messaging[0].Servers)
	}
	env[gateway.EnvNATSURLs] = " nats://a:4222, tls://b:4443 ,c:4222"
	if err := cfg.ApplyEnv(lookup); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Messaging[0].Servers, ","); got != "nats://a:4222,tls://b:4443,c:4222" {
		t.Fatalf("servers %q", got)
	}
	env[gateway.EnvNATSURLs] = "nats://ok:1,://bad"
	if err := cfg.ApplyEnv(lookup); !errors.Is(err, gateway.ErrInvalidConfig) || !strings.Contains(err.Error(), "NYLON_NATS_URLS") {
		t.Fatalf("bad URL: %v", err)
	}
}

func TestCheckSecurity(t *testing.T) {
	cfg, err := gateway.LoadConfig("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckSecurity("dev"); err != nil {
		t.Fatalf("dev: %v", err)
	}
	err = cfg.CheckSecurity("prod")
	if !errors.Is(err, gateway.ErrInvalidConfig) || !strings.Contains(err.Error(), "messaging[0].tls.enabled") || !strings.Contains(err.Error(), "messaging[0].auth.enabled") {
		t.Fatalf("prod without TLS and auth: %v", err)
	}

	withTLS := func(servers []string, tlsOn bool, auth gateway.AuthConfig) *gateway.Config {
		c := *cfg
		c.Messaging = append([]gateway.MessagingConfig(nil), cfg.Messaging...)
		c.Messaging[0].Servers = servers
		c.Messaging[0].TLS.Enabled = tlsOn
		c.Messaging[0].Auth = auth
		return &c
	}
	nats := []string{"nats://a:4222"}
	tests := []struct {
		name    string
		cfg     *gateway.Config
		wantErr []string // empty: accepted
	}{
		{"nkey seed", withTLS(nats, true, gateway.AuthConfig{Enabled: true, NKey: "/etc/nylon/user.nk"}), nil},
		{"creds file", withTLS(nats, true, gateway.AuthConfig{Enabled: true, CredsFile: "/etc/nylon/user.creds"}), nil},
		{"tls:// servers", withTLS([]string{"tls://a:4222", "wss://b:443"}, false, gateway.AuthConfig{Enabled: true, CredsFile: "u.creds"}), nil},
		{"no servers shares the caller's connection", withTLS(nil, false, gateway.AuthConfig{}), nil},
		{"token", withTLS(nats, true, gateway.AuthConfig{Enabled: true, Token: "s3cret"}), []string{"messaging[0].auth.token", "dev-only"}},
		{"user and password", withTLS(nats, true, gateway.AuthConfig{Enabled: true, User: "u", Password: "p"}), []string{"messaging[0].auth.user", "dev-only"}},
		{"one plaintext server", withTLS([]string{"tls://a:4222", "nats://b:4222"}, false, gateway.AuthConfig{Enabled: true, NKey: "u.nk"}), []string{"messaging[0].tls.enabled"}},
		{"credentials not enabled", withTLS(nats, true, gateway.AuthConfig{NKey: "u.nk"}), []string{"messaging[0].auth.enabled"}},
	}
	for _, tt := range tests {
		err := tt.cfg.CheckSecurity("prod")
		if len(tt.wantErr) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, gateway.ErrInvalidConfig) {
			t.Errorf("%s: %v, want an ErrInvalidConfig", tt.name, err)
			continue
		}
		for _, want := range tt.wantErr {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v lacks %q", tt.name, err, want)
			}
		}
		if err := tt.cfg.CheckSecurity("dev"); err != nil {
			t.Errorf("%s in dev: %v", tt.name, err)
		}
	}
}

func TestNewValidatesGoConfig(t *testing.T) {
	e := newEnv(t)
	_, err := gateway.New(gateway.Config{Routes: []gateway.RouteConfig{{Path: "/x"}}}, e.nc)
	if !errors.Is(err, gateway.ErrInvalidConfig) {
		t.Fatalf("New accepted an invalid config: %v", err)
	}
	_, err = gateway.New(gateway.Config{}, nil)
	if err == nil {
		t.Fatal("New accepted no connection")
	}
}
