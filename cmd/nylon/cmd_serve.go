package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/natsconn"
	"github.com/nylon-functions/nylon/internal/realip"
)

func serveCommand() command {
	return command{
		name:    "serve",
		summary: "run the platform: function node, HTTP/WebSocket gateway and admin API, on embedded or external NATS",
		help: `Without --nats, serve starts an embedded NATS server with JetStream (store in
<data>/jetstream) on --nats-listen, so the nats CLI and other nylon processes
can connect to it. SIGINT or SIGTERM drains every component and NATS within
--drain-timeout; a second signal exits at once. With --shutdown-delay, serve
first goes on serving for that long while /healthz answers 503 (state
draining), so load balancers stop sending before the listeners close; a
second signal ends the delay early, a third exits at once.

Every process listens on --admin for /healthz and /metrics, whatever its
roles; the admin API (/v1) is served there only when the roles include admin.

With --http-tls-cert and --http-tls-key the gateway serves HTTPS (HTTP/2 and
HTTP/1.1, WebSocket over HTTP/1.1), with --admin-tls-cert and --admin-tls-key
the admin listener does; a certificate is re-read when its files change, and
one that does not load leaves the previous one served.

SIGHUP (systemctl reload, kill -HUP) never stops serve: it re-reads
--gateway-config and swaps the gateway's plugins, routes and caller policies
in place (a file that does not load, or that changes a messaging config's
connection, subject_prefix or dlq, is logged as an ERROR and the previous
configuration keeps serving), and checks the certificate files at once.
Every other setting needs a restart.

Configuration errors, --gateway-config's and certificates that do not load
included, stop serve with exit code 2 before anything starts. Outside --env
dev, serve refuses to start without TLS (--nats-ca or tls:// URLs) and NATS
credentials (--nats-nkey or --nats-creds) for external servers, the embedded
server must listen on a loopback address, role admin needs --admin-token, and
a gateway messaging config with servers of its own needs TLS and an nkey seed
or creds file; it warns when the admin API listens beyond loopback without
TLS, as its token then crosses the network in clear text.`,
		run:          runServe,
		keepsHangups: true,
	}
}

// Roles a serve process can take (--role).
const (
	roleNode    = "node"
	roleGateway = "gateway"
	roleAdmin   = "admin"
)

// allRoles is the order components start in: the node first, so functions
// are served before the edges send traffic, the admin API last.
func allRoles() []string { return []string{roleNode, roleGateway, roleAdmin} }

// serveConfig is everything `nylon serve` is configured with; flags and
// NYLON_* variables fill it, Validate checks it once.
type serveConfig struct {
	Env           string
	Data          string
	NATS          natsFlags
	HTTP          string
	Admin         string
	HTTPTLS       tlsFiles // --http-tls-cert, --http-tls-key; empty: plain HTTP
	AdminTLS      tlsFiles // --admin-tls-cert, --admin-tls-key; empty: plain HTTP
	Role          string
	GatewayConfig string
	AdminToken    string
	NodeID        string
	Log           logFlags
	DrainTimeout  time.Duration
	// ShutdownDelay is how long serve keeps serving after the first signal,
	// /healthz answering 503, before it drains; 0 drains at once.
	ShutdownDelay time.Duration
	Profiling     bool
	// MemoryLimit is --memory-limit: auto, off or a size; see
	// memoryLimit().
	MemoryLimit string
	Replicas    int
	// SubjectPrefix is --subject-prefix; empty means nylon.<env>: use
	// prefix().
	SubjectPrefix string
	Function      functionDefaults
	HTTPLimits    httpLimits
	// WS is the WebSocket edge's settings (role gateway).
	WS wsLimits
	// TrustedProxies are --trusted-proxies: addresses and CIDR prefixes
	// whose X-Forwarded-For the gateway believes; none by default.
	TrustedProxies []string
	// AccessLog is --access-log: one INFO line per gateway request.
	AccessLog bool
}

func (c *serveConfig) register(f *flagSet) {
	f.String(&c.Env, "env", "name", "NYLON_ENV", "dev", "environment: the subject prefix nylon.<env>; anything but dev requires TLS and NATS credentials")
	registerSubjectPrefix(f, &c.SubjectPrefix)
	f.String(&c.Data, "data", "dir", "NYLON_DATA", "./data", "data directory: JetStream store (embedded NATS), compile cache")
	c.NATS.register(f, true)
	f.Int(&c.Replicas, "replicas", "n", "NYLON_REPLICAS", 1, "JetStream replicas of the registry buckets and dead-letter streams this process creates: 1 on one server, 3 on a three-server cluster")
	f.String(&c.HTTP, "http", "addr", "NYLON_HTTP", "127.0.0.1:8080", "gateway and WebSocket edge listen address (role gateway)")
	c.HTTPTLS.register(f, "http", "HTTP", "the gateway (role gateway)")
	c.HTTPLimits.register(f)
	c.WS.register(f)
	f.List(&c.TrustedProxies, "trusted-proxies", "cidr,...", "NYLON_TRUSTED_PROXIES", nil,
		"load balancers and proxies in front of the gateway, by IP address or CIDR prefix (10.0.0.0/8, fd00::/8): from them the client address is the rightmost untrusted X-Forwarded-For entry, and X-Forwarded-* go on upstream; anything inside them can set the client address. Default none: the client is the TCP peer (role gateway)")
	f.Bool(&c.AccessLog, "access-log", "NYLON_ACCESS_LOG", false,
		"log one INFO line per gateway request (gateway: access): method, host, path without the query, route, function, status, bytes, duration, client_ip, request_id, traceparent, user_agent; never sampled (role gateway)")
	f.String(&c.Admin, "admin", "addr", "NYLON_ADMIN", "127.0.0.1:8081", "listen address of /healthz and /metrics (every role) and of the admin API (role admin)")
	c.AdminTLS.register(f, "admin", "ADMIN", "the admin listener")
	f.String(&c.GatewayConfig, "gateway-config", "file", "NYLON_GATEWAY_CONFIG", "", "gateway YAML: messaging configs, plugins and routes (docs/GATEWAY.md), reloaded on SIGHUP; empty serves registry routes only")
	f.String(&c.AdminToken, "admin-token", "token", "NYLON_ADMIN_TOKEN", "", "bearer token the admin API requires on /v1; required outside --env dev with role admin")
	f.String(&c.NodeID, "node-id", "id", "NYLON_NODE_ID", "", "this node's id in micro metadata, /healthz and /v1/nodes (default: host name + random suffix)")
	f.String(&c.Role, "role", "roles", "NYLON_ROLE", "all", "what this process runs: all, or a comma list of node, gateway, admin")
	c.Function.register(f)
	c.Log.register(f)
	f.Duration(&c.DrainTimeout, "drain-timeout", "NYLON_DRAIN_TIMEOUT", 30*time.Second, "how long shutdown may take to finish in-flight work before it is cut off")
	f.Duration(&c.ShutdownDelay, "shutdown-delay", "NYLON_SHUTDOWN_DELAY", 0, "how long to go on serving after SIGINT/SIGTERM, /healthz answering 503, before draining, so load balancers stop sending first; a second signal ends it. 0: drain at once")
	f.Bool(&c.Profiling, "pprof", "NYLON_PPROF", false, "serve Go runtime profiles on the admin address under /debug/pprof/ (behind --admin-token)")
	f.String(&c.MemoryLimit, "memory-limit", "size", "NYLON_MEMORY_LIMIT", memoryLimitAuto, "Go's soft memory limit (as GOMEMLIMIT): auto is 90% of the container's cgroup memory limit, if any, unless GOMEMLIMIT is set; off leaves the runtime alone (GOMEMLIMIT, or none); or a size: bytes, or with a KiB, MiB, GiB or TiB suffix (1536MiB), at least 64MiB")
}

// Validate checks the whole configuration, NATS security rule included.
func (c *serveConfig) Validate() error {
	if c.Env == "" || strings.ContainsAny(c.Env, ".*> \t\r\n") {
		return fmt.Errorf("--env: %q must be one NATS subject token (no '.', '*', '>' or spaces)", c.Env)
	}
	if err := validateSubjectPrefix(c.SubjectPrefix); err != nil {
		return err
	}
	if c.Data == "" {
		return errors.New("--data: empty")
	}
	if err := validateListenAddr(c.HTTP); err != nil {
		return fmt.Errorf("--http: %w", err)
	}
	if err := validateListenAddr(c.Admin); err != nil {
		return fmt.Errorf("--admin: %w", err)
	}
	if err := c.HTTPTLS.validate("http", "HTTP"); err != nil {
		return err
	}
	if err := c.AdminTLS.validate("admin", "ADMIN"); err != nil {
		return err
	}
	if _, err := parseRoles(c.Role); err != nil {
		return fmt.Errorf("--role: %w", err)
	}
	if err := c.Log.validate(); err != nil {
		return err
	}
	if c.DrainTimeout <= 0 {
		return fmt.Errorf("--drain-timeout: %v must be positive", c.DrainTimeout)
	}
	if c.ShutdownDelay < 0 {
		return fmt.Errorf("--shutdown-delay: %v is negative", c.ShutdownDelay)
	}
	if err := c.Function.validate(); err != nil {
		return err
	}
	if _, err := parseMemoryLimit(c.MemoryLimit); err != nil {
		return err
	}
	if err := c.HTTPLimits.validate(); err != nil {
		return err
	}
	if err := c.WS.validate(); err != nil {
		return err
	}
	if _, err := realip.Parse(c.TrustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w (want IP addresses or CIDR prefixes, such as 10.0.0.0/8 or fd00::/8)", err)
	}
	if p := c.WS.anyOrigin(); p != "" && c.Env != natsconn.DevEnv {
		return fmt.Errorf("refusing to start: --ws-origins %q accepts every origin, so any web page a user visits could open WebSockets with the user's cookies (cross-site WebSocket hijacking); name the origins, or use --env dev on a trusted machine", p)
	}
	if c.Replicas < 1 || c.Replicas > gateway.MaxReplicas {
		return fmt.Errorf("--replicas: %d: want 1 to %d", c.Replicas, gateway.MaxReplicas)
	}
	if c.Replicas > 1 && len(c.NATS.URLs) == 0 {
		return fmt.Errorf("--replicas: %d needs a NATS cluster (--nats); the embedded server is a single server", c.Replicas)
	}
	if err := c.natsConfig().Validate(); err != nil {
		err = natsFlagError(err)
		if errors.Is(err, natsconn.ErrInsecure) {
			return fmt.Errorf("refusing to start: %w; or use --env dev on a trusted machine", err)
		}
		return err
	}
	// platform.NewAdmin refuses this too, but only once NATS and the other
	// components are up; checked here, it stops serve before anything starts.
	if c.AdminToken == "" && c.Env != natsconn.DevEnv && slices.Contains(c.roles(), roleAdmin) {
		return fmt.Errorf("refusing to start: --admin-token (NYLON_ADMIN_TOKEN): the admin API requires a bearer token in env %q; give one, or use --env dev on a trusted machine", c.Env)
	}
	return nil
}

// prefix is the subject prefix of everything this process serves and
// calls: --subject-prefix, else nylon.<env>.
func (c *serveConfig) prefix() string { return subjectPrefix(c.SubjectPrefix, c.Env) }

// gatewayConfig loads and checks --gateway-config when this process runs
// the gateway: strict YAML, references, and the security rule of env, so a
// bad file stops serve before anything starts. Without the flag (or the
// role) it is the empty Config: the gateway serves registry routes only.
// Call Validate first.
func (c *serveConfig) gatewayConfig() (gateway.Config, error) {
	if c.GatewayConfig == "" || !slices.Contains(c.roles(), roleGateway) {
		return gateway.Config{}, nil
	}
	g, err := gateway.LoadConfig(c.GatewayConfig)
	if err != nil {
		return gateway.Config{}, fmt.Errorf("--gateway-config: %w", err)
	}
	if err := g.CheckSecurity(c.Env); err != nil {
		return gateway.Config{}, fmt.Errorf("refusing to start: --gateway-config %s: %w; outside --env dev a messaging config with servers of its own needs tls and an nkey seed or creds file (a config without servers uses serve's connection)", c.GatewayConfig, err)
	}
	return *g, nil
}

func (c *serveConfig) natsConfig() natsconn.Config {
	host, _ := os.Hostname()
	return c.NATS.config(c.Env, "nylon serve "+host, c.Data)
}

// memoryLimit returns --memory-limit parsed; call Validate first.
func (c *serveConfig) memoryLimit() memoryLimitSetting {
	m, _ := parseMemoryLimit(c.MemoryLimit)
	return m
}

// roles returns the roles in start order; call Validate first.
func (c *serveConfig) roles() []string {
	r, _ := parseRoles(c.Role)
	return r
}

func parseRoles(s string) ([]string, error) {
	items := splitList(s)
	if len(items) == 0 {
		return nil, errors.New("empty; want all or a comma list of node, gateway, admin")
	}
	want := map[string]bool{}
	for _, it := range items {
		switch it {
		case "all":
			for _, r := range allRoles() {
				want[r] = true
			}
		case roleNode, roleGateway, roleAdmin:
			want[it] = true
		default:
			return nil, fmt.Errorf("unknown role %q; want all or a comma list of node, gateway, admin", it)
		}
	}
	var out []string
	for _, r := range allRoles() {
		if want[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

func validateListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number in 0..65535", addr, port)
	}
	return nil
}

func runServe(ctx context.Context, a *app, cmd command, args []string) error {
	var cfg serveConfig
	f := newFlagSet(a, cmd, "[flags]")
	cfg.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if len(f.Args()) > 0 {
		return usageErrorf(cmd.name, "unexpected argument %q", f.Args()[0])
	}
	if err := cfg.Validate(); err != nil {
		return &usageError{cmd: cmd.name, err: err}
	}
	log := cfg.Log.logger(a.stderr)
	// A SIGHUP so far asked to read files that are read only now.
	if a.hangups.dropEarly() {
		log.Info("SIGHUP before start; ignored: the configuration files are read after it")
	}
	gcfg, err := cfg.gatewayConfig()
	if err != nil {
		return &usageError{cmd: cmd.name, err: err}
	}
	certs, err := cfg.loadTLS(log)
	if err != nil {
		return &usageError{cmd: cmd.name, err: err}
	}
	cfg.warnPlainAdmin(log)
	applyMemoryLimit(log, cfg.memoryLimit(), a.getenv, hostCgroupPaths())
	shared := newServeShared(&cfg, gcfg, certs)
	defer reloadOnHangup(ctx, log, a.hangups, certs, shared)()
	err = serve(ctx, a, &cfg, log, serveComponents(shared))
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancel()
	return errors.Join(err, shared.Close(closeCtx))
}

// serve connects NATS, starts the components of specs for the selected roles, blocks
// until ctx is done (or a component stops by itself), goes on serving for
// the shutdown delay if there is one, then drains the components in reverse
// order and closes NATS, all within the drain timeout.
func serve(ctx context.Context, a *app, cfg *serveConfig, log *slog.Logger, specs []componentSpec) error {
	// Held from the start, so a second signal that comes quickly after
	// the first cannot kill the process before the delay begins.
	var hurry <-chan struct{}
	release := func() {}
	if cfg.ShutdownDelay > 0 {
		hurry, release = a.interrupts.Hold()
		defer release()
	}
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	conn, err := natsconn.Connect(ctx, cfg.natsConfig(), log)
	if err != nil {
		return err
	}
	printNATS(a, cfg, conn)

	roles := cfg.roles()
	shuttingDown := make(chan struct{})
	deps := serveDeps{Config: cfg, NATS: conn, Log: log, Stdout: a.stdout, ShuttingDown: shuttingDown}
	started, startErr := startComponents(ctx, deps, specs, roles)
	var stoppedBy error
	if startErr == nil {
		fmt.Fprintf(a.stdout, "nylon serve: ready (env %s, roles %s); Ctrl-C drains and stops\n", cfg.Env, strings.Join(roles, ","))
		log.Info("serving", "env", cfg.Env, "roles", roles)
		stoppedBy = waitForStop(ctx, started)
	}
	// /healthz answers 503 from here on. A shutdown asked for by a signal
	// waits out the delay; a failed start or a component that died does
	// not.
	close(shuttingDown)
	if startErr == nil && stoppedBy == nil && cfg.ShutdownDelay > 0 {
		stoppedBy = shutdownDelay(ctx, a, log, cfg.ShutdownDelay, hurry, started)
	}
	// From here on a further signal kills the process, as it does without
	// a delay.
	release()

	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancel()
	fmt.Fprintf(a.stdout, "nylon serve: draining (up to %v)\n", cfg.DrainTimeout)
	log.Info("draining", "timeout", cfg.DrainTimeout)
	drainErr := drainComponents(drainCtx, log, started)
	if err := conn.Close(drainCtx); err != nil {
		drainErr = errors.Join(drainErr, fmt.Errorf("close nats: %w", err))
	}
	if drainErr != nil {
		log.Error("shutdown incomplete", "error", drainErr)
	}
	fmt.Fprintln(a.stdout, "nylon serve: stopped")
	if startErr != nil && ctx.Err() != nil && errors.Is(startErr, ctx.Err()) {
		// A signal during start-up (an orchestrator scaling down a pod
		// that is still starting) asks for a stop, which this was: what
		// had started is drained, and the exit is clean, not a failure.
		log.Info("stopped during start-up", "interrupted", startErr)
		startErr = nil
	}
	return errors.Join(startErr, stoppedBy, drainErr)
}

func printNATS(a *app, cfg *serveConfig, conn *natsconn.Conn) {
	url := conn.ClientURL()
	if conn.Embedded() {
		fmt.Fprintf(a.stdout, "nats: %s (embedded server, JetStream store in %s)\n", url, filepath.Join(cfg.Data, "jetstream"))
	} else {
		fmt.Fprintf(a.stdout, "nats: %s (external servers)\n", url)
	}
	fmt.Fprintf(a.stdout, "nats CLI: nats --server %s micro ls\n", url)
}
