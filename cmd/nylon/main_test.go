package main

import (
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	code, out, errOut := runCmd(t, "version")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	for _, want := range []string{"nylon ", "commit", "go1.", "wazero", "nats.go      v1.", "nats-server  v2."} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}

func TestHelpForEveryCommand(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"--help", "-h"} {
			t.Run(c.name+h, func(t *testing.T) {
				code, out, errOut := runCmd(t, c.name, h)
				if code != 0 {
					t.Fatalf("exit %d, stderr: %s", code, errOut)
				}
				if !strings.HasPrefix(out, "Usage: nylon "+c.name) || !strings.Contains(out, "--help") {
					t.Errorf("usage output:\n%s", out)
				}
				checkHelpLayout(t, out)
			})
		}
		t.Run("help "+c.name, func(t *testing.T) {
			code, out, _ := runCmd(t, "help", c.name)
			if code != 0 || !strings.HasPrefix(out, "Usage: nylon "+c.name) {
				t.Errorf("nylon help %s: exit %d, output:\n%s", c.name, code, out)
			}
		})
	}
}

// checkHelpLayout checks a command's help: no line ends in blanks (as
// "Usage: nylon version " did), and the precedence of flags over variables
// is told only where some flag has a variable.
func checkHelpLayout(t *testing.T, out string) {
	t.Helper()
	for i, line := range strings.Split(out, "\n") {
		if strings.TrimRight(line, " \t") != line {
			t.Errorf("line %d %q ends in blanks; help:\n%s", i+1, line, out)
		}
	}
	hasEnv := strings.Contains(out, "(env NYLON_")
	if tells := strings.Contains(out, "wins over its environment variable"); tells != hasEnv {
		t.Errorf("help tells the variables' precedence: %v, has flags with a variable: %v:\n%s", tells, hasEnv, out)
	}
}

// version and bench have no flag with a variable, version none at all but
// -h: their help says so plainly.
func TestHelpOfCommandsWithoutVariables(t *testing.T) {
	code, out, _ := runCmd(t, "version", "--help")
	want := "Usage: nylon version\n\nprint the version of nylon and of its Go, wazero and NATS libraries\n\nFlags:\n  -h, --help\n        show this help\n"
	if code != 0 || out != want {
		t.Errorf("version --help: exit %d\n%q\nwant\n%q", code, out, want)
	}
	for _, args := range [][]string{{"bench", "--help"}, {"dlq", "ls", "--help"}, {"dlq", "replay", "--help"}, {"help", "version"}} {
		code, out, _ := runCmd(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		checkHelpLayout(t, out)
	}
	if code, out, _ := runCmd(t, "help", "--help"); code != 0 || !strings.Contains(out, "Commands:") {
		t.Errorf("help --help: exit %d, want the top-level usage:\n%s", code, out)
	}
}

// `nylon dlq --help` shows the flags of both subcommands, ls and replay.
func TestDLQHelpListsTheFlagsOfLsAndReplay(t *testing.T) {
	code, out, _ := runCmd(t, "dlq", "--help")
	ls, replay, ok := strings.Cut(out, "Usage: nylon dlq replay")
	if !ok {
		t.Fatalf("dlq --help: exit %d, no usage of replay:\n%s", code, out)
	}
	for _, want := range []string{"Usage: nylon dlq ls", "--nats url,...", "--subject-prefix", "--limit n", "--output"} {
		if code != 0 || !strings.Contains(ls, want) {
			t.Errorf("dlq --help: exit %d, ls lacks %q:\n%s", code, want, out)
		}
	}
	for _, want := range []string{"<seq>... | --all", "--nats url,...", "--subject-prefix", "--all", "--function name",
		"--phase phase", "--limit n", "--timeout duration", "default 5s", "--delete", "--output"} {
		if code != 0 || !strings.Contains(replay, want) {
			t.Errorf("dlq --help: exit %d, replay lacks %q:\n%s", code, want, out)
		}
	}
}

func TestServeHelpListsEveryFlagAndVariable(t *testing.T) {
	_, out, _ := runCmd(t, "serve", "--help")
	for _, want := range []string{
		"--env name", "NYLON_ENV, default dev",
		"--data dir", "NYLON_DATA, default ./data",
		"--nats url,...", "NYLON_NATS_URLS",
		"--nats-listen addr", "NYLON_NATS_LISTEN, default 127.0.0.1:4222",
		"--nats-creds", "NYLON_NATS_CREDS", "--nats-nkey", "NYLON_NATS_NKEY",
		"--nats-ca", "NYLON_NATS_CA", "--nats-cert", "NYLON_NATS_CERT", "--nats-key", "NYLON_NATS_KEY",
		"--nats-user", "NYLON_NATS_USER", "--nats-password", "NYLON_NATS_PASSWORD", "--nats-token", "NYLON_NATS_TOKEN",
		"--http addr", "NYLON_HTTP, default 127.0.0.1:8080",
		"--admin addr", "NYLON_ADMIN, default 127.0.0.1:8081",
		"--role roles", "NYLON_ROLE, default all",
		"--log-level", "NYLON_LOG_LEVEL, default info",
		"--log-format", "NYLON_LOG_FORMAT, default text",
		"--drain-timeout duration", "NYLON_DRAIN_TIMEOUT, default 30s",
		"--shutdown-delay duration", "NYLON_SHUTDOWN_DELAY, default 0s",
		"--pprof", "NYLON_PPROF",
		"--memory-limit size", "NYLON_MEMORY_LIMIT, default auto",
		"--replicas n", "NYLON_REPLICAS, default 1",
		"--http-read-timeout duration", "NYLON_HTTP_READ_TIMEOUT, default 1m0s",
		"--http-idle-timeout duration", "NYLON_HTTP_IDLE_TIMEOUT, default 2m0s",
		"--http-max-connections n", "NYLON_HTTP_MAX_CONNECTIONS",
		"--http-tls-cert file", "NYLON_HTTP_TLS_CERT", "--http-tls-key file", "NYLON_HTTP_TLS_KEY",
		"--admin-tls-cert file", "NYLON_ADMIN_TLS_CERT", "--admin-tls-key file", "NYLON_ADMIN_TLS_KEY",
		"--trusted-proxies cidr,...", "NYLON_TRUSTED_PROXIES",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

func TestTopLevelHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCmd(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, c := range commands() {
			if !strings.Contains(out, "  "+c.name+" ") {
				t.Errorf("%v: command %q missing from:\n%s", args, c.name, out)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serve", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "--drain-timeout", "soon"}, "invalid value"},
		{[]string{"serve", "--drain-timeout", "0s"}, "--drain-timeout"},
		{[]string{"serve", "--shutdown-delay", "-1s"}, "--shutdown-delay: -1s is negative"},
		{[]string{"serve", "--role", "node,web"}, `unknown role "web"`},
		{[]string{"serve", "--replicas", "two"}, "invalid value"},
		{[]string{"serve", "--replicas", "0"}, "--replicas: 0: want 1 to 5"},
		{[]string{"serve", "--replicas", "3"}, "needs a NATS cluster (--nats)"},
		{[]string{"serve", "--log-level", "loud"}, "--log-level"},
		{[]string{"serve", "--log-format", "xml"}, "--log-format"},
		{[]string{"serve", "--http", "8080"}, "--http"},
		{[]string{"serve", "--admin", "127.0.0.1:99999"}, "--admin"},
		{[]string{"serve", "--env", "a.b"}, "--env"},
		{[]string{"serve", "--nats-listen", "nowhere"}, "--nats-listen (NYLON_NATS_LISTEN)"},
		{[]string{"serve", "--nats-token", "t"}, "only used with external servers"},
		{[]string{"version", "now"}, `unexpected argument "now"`},
		{[]string{"dlq", "replay"}, "missing <seq>"},
		{[]string{"dlq", "replay", "--all", "7"}, `give it no sequence (got "7")`},
		{[]string{"dlq", "replay", "seven"}, `sequence "seven": want a positive integer`},
		{[]string{"dlq", "replay", "0"}, `sequence "0": want a positive integer`},
		{[]string{"dlq", "replay", "--all", "--limit", "0"}, "--limit: 0: want 1 to 1000"},
		{[]string{"dlq", "replay", "--all", "--limit", "1001"}, "--limit: 1001: want 1 to 1000"},
		{[]string{"dlq", "replay", "--function", "hello", "7"}, "--function and --phase filter --all"},
		{[]string{"dlq", "replay", "--all", "--phase", "nope"}, "--phase"},
		{[]string{"dlq", "replay", "--all", "--function", "Bad.Name"}, "--function"},
		{[]string{"dlq", "replay", "7", "--timeout", "0s"}, "--timeout: 0s must be positive"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runCmd(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "--help' for usage") {
				t.Errorf("stderr = %q, want %q and a --help hint", errOut, tt.want)
			}
		})
	}
}
