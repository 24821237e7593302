package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/wasmhost"
)

// The node defaults and the subject prefix come from flags and NYLON_*
// variables and reach platform.Config; without them serve passes the
// platform's own defaults and nylon.<env>, as before the flags existed.
func TestServeFunctionDefaultsAndPrefixFlags(t *testing.T) {
	applied := func(c *serveConfig) platform.Config {
		var p platform.Config
		c.Function.apply(&p)
		return p
	}

	c := parseServeFlags(t, nil)
	if c.Function.IdleTimeout != wasmhost.DefaultIdleTimeout {
		t.Errorf("default idle timeout %v, want wasmhost's %v", c.Function.IdleTimeout, wasmhost.DefaultIdleTimeout)
	}
	if got := parseServeFlags(t, map[string]string{"NYLON_FUNCTION_IDLE_TIMEOUT": "30s"}).Function.IdleTimeout; got != 30*time.Second {
		t.Errorf("NYLON_FUNCTION_IDLE_TIMEOUT=30s: %v", got)
	}
	if got := parseServeFlags(t, nil, "--function-idle-timeout", "-1s").Function.IdleTimeout; got != -time.Second {
		t.Errorf("--function-idle-timeout -1s (never): %v", got)
	}
	want := platform.Config{Timeout: platform.DefaultTimeout, MemoryMB: wasmhost.DefaultMemoryMB,
		MaxBodyBytes: wasmhost.DefaultMaxInput, QueueLength: platform.DefaultQueueLength}
	if got := applied(c); got.Timeout != want.Timeout || got.MaxWorkers != 0 || got.MemoryMB != want.MemoryMB ||
		got.MaxBodyBytes != want.MaxBodyBytes || got.QueueLength != want.QueueLength {
		t.Errorf("defaults: %+v, want the platform's %+v", c.Function, want)
	}
	// Zero is the platform's default too, as in platform.Config.
	c = parseServeFlags(t, nil, "--function-timeout", "0", "--function-memory-mb", "0", "--function-max-body-bytes", "0", "--function-queue", "0")
	if got := applied(c); got.Timeout != 0 || got.MemoryMB != 0 || got.MaxBodyBytes != 0 || got.QueueLength != 0 {
		t.Errorf("zeros: %+v, want zeros (the platform's defaults)", got)
	}
	if p := c.prefix(); p != "nylon.dev" {
		t.Errorf("default prefix %q, want nylon.dev", p)
	}
	if p := parseServeFlags(t, nil, "--env", "prod", "--nats-listen", "127.0.0.1:-1", "--role", "node").prefix(); p != "nylon.prod" {
		t.Errorf("prefix of --env prod %q, want nylon.prod", p)
	}

	env := map[string]string{
		"NYLON_SUBJECT_PREFIX":          "acme.fn",
		"NYLON_FUNCTION_TIMEOUT":        "250ms",
		"NYLON_FUNCTION_MAX_WORKERS":    "8",
		"NYLON_FUNCTION_MEMORY_MB":      "64",
		"NYLON_FUNCTION_MAX_BODY_BYTES": "4096",
		"NYLON_FUNCTION_QUEUE":          "10",
	}
	c = parseServeFlags(t, env)
	if got := applied(c); c.prefix() != "acme.fn" || got.Timeout != 250*time.Millisecond || got.MaxWorkers != 8 ||
		got.MemoryMB != 64 || got.MaxBodyBytes != 4096 || got.QueueLength != 10 {
		t.Errorf("from NYLON_*: prefix %q, %+v", c.prefix(), got)
	}
	c = parseServeFlags(t, env, "--subject-prefix", "x.y.z", "--function-timeout", "2s", "--function-max-workers", "0",
		"--function-memory-mb", "256", "--function-max-body-bytes", "100", "--function-queue", "1")
	if got := applied(c); c.prefix() != "x.y.z" || got.Timeout != 2*time.Second || got.MaxWorkers != 0 ||
		got.MemoryMB != 256 || got.MaxBodyBytes != 100 || got.QueueLength != 1 {
		t.Errorf("flags over NYLON_*: prefix %q, %+v", c.prefix(), got)
	}
}

// Out-of-range node defaults and invalid prefixes are usage errors (exit
// 2) that stop serve before anything starts; invoke and dlq ls refuse an
// invalid prefix the same way.
func TestServeRejectsBadFunctionDefaultsAndPrefix(t *testing.T) {
	expectServeRefuses(t, []refusedServe{
		{args: []string{"--subject-prefix", "acme.*"}, want: "--subject-prefix"},
		{args: []string{"--subject-prefix", "acme..fn"}, want: "--subject-prefix"},
		{env: map[string]string{"NYLON_SUBJECT_PREFIX": "acme fn"}, want: "--subject-prefix"},
		{args: []string{"--function-timeout", "500us"}, want: "--function-timeout: 500µs: want 1ms to 10m"},
		{args: []string{"--function-timeout", "11m"}, want: "--function-timeout"},
		{env: map[string]string{"NYLON_FUNCTION_TIMEOUT": "soon"}, want: `NYLON_FUNCTION_TIMEOUT="soon": not a duration`},
		{args: []string{"--function-max-workers", "-1"}, want: "--function-max-workers: -1"},
		{args: []string{"--function-max-workers", "4097"}, want: "--function-max-workers: 4097"},
		{args: []string{"--function-memory-mb", "-1"}, want: "--function-memory-mb: -1: want 1 to 4096"},
		{args: []string{"--function-memory-mb", "4097"}, want: "--function-memory-mb"},
		{args: []string{"--function-max-body-bytes", "-1"}, want: "--function-max-body-bytes: -1"},
		{args: []string{"--function-max-body-bytes", "67108865"}, want: "--function-max-body-bytes"},
		{args: []string{"--function-queue", "-5"}, want: "--function-queue: -5: want 1 to 1048576"},
		{args: []string{"--function-queue", "1048577"}, want: "--function-queue: 1048577"},
		{env: map[string]string{"NYLON_FUNCTION_QUEUE": "lots"}, want: `NYLON_FUNCTION_QUEUE="lots": not an integer`},
		{args: []string{"--http-read-timeout", "-1s"}, want: "--http-read-timeout: -1s is negative"},
		{args: []string{"--http-idle-timeout", "-1s"}, want: "--http-idle-timeout"},
		{args: []string{"--http-max-connections", "-1"}, want: "--http-max-connections: -1 is negative"},
		{env: map[string]string{"NYLON_HTTP_MAX_CONNECTIONS": "many"}, want: `NYLON_HTTP_MAX_CONNECTIONS="many": not an integer`},
		{args: []string{"--compile-cache-max-mb", "-1"}, want: "--compile-cache-max-mb: -1: want 0 (no bound) to"},
		{args: []string{"--compile-cache-max-mb", "8796093022208"}, want: "--compile-cache-max-mb: 8796093022208"},
		{env: map[string]string{"NYLON_COMPILE_CACHE_MAX_MB": "-5"}, want: "--compile-cache-max-mb: -5"},
	})

	for _, args := range [][]string{
		{"invoke", "hello", "--subject-prefix", "acme.>"},
		{"invoke", "hello", "--subject-prefix", ".acme"},
		{"dlq", "ls", "--subject-prefix", "acme.*.fn"},
	} {
		// No server listens on the default address: a usage error comes
		// before any connection attempt.
		if code, _, errOut := runCmd(t, append(args, "--nats", "nats://127.0.0.1:1")...); code != 2 || !strings.Contains(errOut, "--subject-prefix") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error naming --subject-prefix", args, code, errOut)
		}
	}
	t.Setenv("NYLON_SUBJECT_PREFIX", "a..b")
	if code, _, errOut := runCmd(t, "dlq", "ls", "--nats", "nats://127.0.0.1:1"); code != 2 || !strings.Contains(errOut, "--subject-prefix") {
		t.Errorf("dlq ls with NYLON_SUBJECT_PREFIX=a..b: exit %d, stderr %q; want a usage error", code, errOut)
	}
}

func mapString(m map[string]string) string {
	var b strings.Builder
	for k, v := range m {
		b.WriteString(k + "=" + v)
	}
	return b.String()
}

// --compile-cache-max-mb (NYLON_COMPILE_CACHE_MAX_MB) bounds the wasm
// host's <data>/wazero-cache: default 2048 MiB, 0 no bound. The host serve
// builds trims a directory over it when it starts.
func TestServeCompileCacheMaxMB(t *testing.T) {
	if got := parseServeFlags(t, nil).Function.CompileCacheMaxMB; got != 2048 {
		t.Errorf("default --compile-cache-max-mb %d, want 2048", got)
	}
	if got := parseServeFlags(t, nil).Function.compileCacheMaxBytes(); got != wasmhost.DefaultCompilationCacheMaxBytes {
		t.Errorf("default bound %d bytes, want wasmhost's %d", got, wasmhost.DefaultCompilationCacheMaxBytes)
	}
	if got := parseServeFlags(t, map[string]string{"NYLON_COMPILE_CACHE_MAX_MB": "100"}).Function.CompileCacheMaxMB; got != 100 {
		t.Errorf("NYLON_COMPILE_CACHE_MAX_MB=100: %d", got)
	}
	if got := parseServeFlags(t, map[string]string{"NYLON_COMPILE_CACHE_MAX_MB": "100"}, "--compile-cache-max-mb", "0").Function.CompileCacheMaxMB; got != 0 {
		t.Errorf("--compile-cache-max-mb 0 over NYLON_COMPILE_CACHE_MAX_MB=100: %d", got)
	}

	// Two 600 KiB entries, over a 1 MiB bound: the older goes. With 0,
	// both stay.
	for _, tt := range []struct {
		mb       string
		wantKept []string
	}{
		{"1", []string{"new"}},
		{"0", []string{"new", "old"}},
	} {
		t.Run(tt.mb, func(t *testing.T) {
			c := parseServeFlags(t, nil, "--data", t.TempDir(), "--compile-cache-max-mb", tt.mb)
			dir := filepath.Join(c.Data, "wazero-cache", "wazero-old")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"old", "new"} {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, make([]byte, 600<<10), 0o644); err != nil {
					t.Fatal(err)
				}
				at := time.Now().Add(time.Duration(i-2) * time.Hour)
				if err := os.Chtimes(p, at, at); err != nil {
					t.Fatal(err)
				}
			}
			s := newServeShared(c, gateway.Config{}, serveTLS{})
			ctx := context.Background()
			if _, err := s.wasmHost(ctx, serveDeps{Config: c, Log: slog.New(slog.DiscardHandler)}); err != nil {
				t.Fatalf("wasm host: %v", err)
			}
			defer func() {
				if err := s.Close(ctx); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			var kept []string
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				kept = append(kept, e.Name())
			}
			if !slices.Equal(kept, tt.wantKept) {
				t.Errorf("--compile-cache-max-mb %s kept %v, want %v", tt.mb, kept, tt.wantKept)
			}
		})
	}
}

// parseServeFlags parses and validates serve's flags from args and the
// variables env, failing t on an error.
func parseServeFlags(t *testing.T, env map[string]string, args ...string) *serveConfig {
	t.Helper()
	var c serveConfig
	f := testFlagSet(env)
	c.register(f)
	if err := f.Parse(args); err != nil {
		t.Fatalf("parse %v %v: %v", env, args, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validate %v %v: %v", env, args, err)
	}
	return &c
}
