package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// conf is what a configuration sets up: the messaging configs with their
// limiters, the plugins' targets and the configured routes. New builds the
// first; Reload replaces it whole.
type conf struct {
	cfg     Config
	msgs    []*messaging
	fnMsg   *messaging // the function routes' config
	plugins map[string]*target
	static  []*route // they win path conflicts
}

// compile builds c's plugin targets and configured routes over c.msgs.
func (g *Gateway) compile(c *conf) error {
	c.plugins = make(map[string]*target, len(c.cfg.Plugins))
	for i := range c.cfg.Plugins {
		p := &c.cfg.Plugins[i]
		c.plugins[p.Name] = g.pluginTarget(c, p)
	}
	for i := range c.cfg.Routes {
		rt, err := g.staticRoute(c, &c.cfg.Routes[i])
		if err != nil {
			return fmt.Errorf("gateway: routes[%d]: %w", i, err)
		}
		c.static = append(c.static, rt)
	}
	return nil
}

// Reload replaces the configuration with cfg, validated as New does,
// without dropping a request: plugins, configured routes and every
// caller policy (timeouts, on_error, retries, payload bounds, and each
// messaging config's request_timeout_ms, retry, max_inflight and
// overflow_policy) are swapped at once with the route table. Requests in
// flight finish with the routes and policies they started with; the next
// request sees cfg. The function routes of SetFunctionRoutes stay: the
// table is rebuilt from cfg's routes and them, a configured route winning
// a conflict as always (logged at WARN and counted in
// nylon_gateway_route_conflicts).
//
// It is all or nothing: an invalid cfg (a *ConfigError, wrapping
// ErrInvalidConfig) or a route chi refuses changes nothing. So does a
// change of what only New sets up, refused with an error wrapping
// ErrRestartRequired that names the field: a messaging config's type,
// servers, subject_prefix, tls, auth or dlq, or a messaging config added,
// removed, renamed or moved (the first one carries the function routes).
// A configuration without messaging configs has an implied one, named
// "default" on the default prefix over New's connection: a first
// messaging section that is that config (name default, no type other than
// nats, no servers, tls, auth or dlq, the default subject_prefix or none)
// with caller settings of its own reloads, and so does removing such a
// section.
//
// A messaging config keeps its limiter across reloads, and a change of
// max_inflight or overflow_policy applies to it in place: the calls in
// flight keep counting against the new bound, whatever bound they started
// under. A lowered bound admits no call until fewer than it are in
// flight (none is cut short); a raised one admits the queued calls at
// once, up to it.
//
// Every call is counted in nylon_gateway_config_reloads_total by result,
// and nylon_gateway_config_last_reload_successful is 1 after a success, 0
// after a failure. Safe for concurrent use; calls are serialized with
// SetFunctionRoutes.
func (g *Gateway) Reload(ctx context.Context, cfg Config) (err error) {
	defer func() { g.met.reloaded(err == nil) }()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gateway: reload: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gateway: reload: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.conf.Load()
	// The configs as set up, the implied one of a configuration without
	// any included, and as cfg would set them up.
	was := make([]MessagingConfig, len(old.msgs))
	for i, m := range old.msgs {
		was[i] = m.cfg
	}
	now := cfg.Messaging
	if len(now) == 0 {
		now = []MessagingConfig{g.impliedMessaging()}
	}
	if err := needsRestart(
		msgConfigs{was, len(old.cfg.Messaging) == 0},
		msgConfigs{now, len(cfg.Messaging) == 0},
		g.defaultPrefix()); err != nil {
		return fmt.Errorf("gateway: reload: %w", err)
	}
	c := &conf{cfg: cfg, msgs: make([]*messaging, len(old.msgs))}
	for i, m := range old.msgs {
		c.msgs[i] = m.reconfigured(now[i])
		if m == old.fnMsg {
			c.fnMsg = c.msgs[i]
		}
	}
	if err := g.compile(c); err != nil {
		return fmt.Errorf("gateway: reload: %w", err)
	}
	if _, errs := g.buildMux(c, nil); len(errs) > 0 {
		return fmt.Errorf("gateway: reload: %w", errors.Join(errs...))
	}
	// The reload can no longer fail: the limiters, shared with the
	// requests in flight, take their new bounds now, not before.
	for _, m := range c.msgs {
		m.limiter.set(m.cfg.MaxInflight, m.cfg.OverflowPolicy)
	}
	g.conf.Store(c)
	// Function routes skipped here were skipped, and reported, when
	// SetFunctionRoutes installed them: not a failure of the reload.
	_ = g.installRoutes(c, g.fnRoutes)
	routesAdded, routesRemoved := diffNames(routeNames(old.cfg.Routes), routeNames(cfg.Routes))
	pluginsAdded, pluginsRemoved := diffNames(pluginNames(old.cfg.Plugins), pluginNames(cfg.Plugins))
	g.log.Info("gateway: configuration reloaded", "routes", len(cfg.Routes), "plugins", len(cfg.Plugins),
		"routes_added", routesAdded, "routes_removed", routesRemoved,
		"plugins_added", pluginsAdded, "plugins_removed", pluginsRemoved)
	return nil
}

// ReloadFile reloads the configuration from the YAML file at path, read
// with LoadConfig: Reload, counting a file that does not load (its error
// names the line) as a failed reload too, as Prometheus counts its own.
//
// It applies no environment overrides. A gateway whose configuration
// ApplyEnv changed at start reloads with LoadConfig, ApplyEnv and Reload:
// through ReloadFile, the file's servers differ from those it runs with,
// and every reload is refused with ErrRestartRequired.
func (g *Gateway) ReloadFile(ctx context.Context, path string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		g.met.reloaded(false)
		return fmt.Errorf("gateway: reload: %w", err)
	}
	return g.Reload(ctx, *cfg)
}

// reconfigured is m with cfg's caller settings: the connection, prefix,
// reply inbox, dead-letter stream (cfg may not change them, see
// needsRestart) and limiter stay. Reload sets the limiter's bound and
// policy from cfg once it can no longer fail, since the requests in flight
// share it.
func (m *messaging) reconfigured(cfg MessagingConfig) *messaging {
	n := *m
	n.cfg = cfg
	return &n
}

// msgConfigs are the messaging configs of a configuration; implied: it has
// none, and these are the one New sets up then (impliedMessaging).
type msgConfigs struct {
	cfgs    []MessagingConfig
	implied bool
}

func (ms msgConfigs) names() string {
	out := make([]string, len(ms.cfgs))
	for i := range ms.cfgs {
		out[i] = ms.cfgs[i].Name
	}
	s := "[" + strings.Join(out, " ") + "]"
	if ms.implied {
		s += " (implied: none configured)"
	}
	return s
}

// needsRestart reports, joined, the changes from old to now that only New
// can make, each naming its field; values that may hold secrets (servers,
// tls, auth) are not shown. A subject_prefix left empty is defaultPrefix,
// as New resolves it: the implied config sets it, an explicit one for the
// same connection need not.
func needsRestart(old, now msgConfigs, defaultPrefix string) error {
	if !slices.EqualFunc(old.cfgs, now.cfgs, func(o, n MessagingConfig) bool { return o.Name == n.Name }) {
		return fmt.Errorf("messaging: configs %s, were %s: adding, removing, renaming or reordering one changes the connections, reply inboxes and dead-letter streams set up at start (and the first carries the function routes; a configuration without any has one named %q): %w",
			now.names(), old.names(), defaultMessagingName, ErrRestartRequired)
	}
	var errs []error
	for i := range old.cfgs {
		o, n := &old.cfgs[i], &now.cfgs[i]
		path := fmt.Sprintf("messaging[%d]", i)
		how := ""
		if now.implied {
			how = fmt.Sprintf(" by removing the messaging section (leaving the implied %q)", defaultMessagingName)
		}
		changed := func(field, detail string) {
			errs = append(errs, fmt.Errorf("%s.%s: %s%s: %w", path, field, detail, how, ErrRestartRequired))
		}
		if ot, nt := cmp.Or(o.Type, DefaultMessagingType), cmp.Or(n.Type, DefaultMessagingType); ot != nt {
			changed("type", fmt.Sprintf("changed from %q to %q", ot, nt))
		}
		if !slices.Equal(o.Servers, n.Servers) {
			changed("servers", "changed (a connection of its own is dialled at start)")
		}
		if op, np := cmp.Or(o.SubjectPrefix, defaultPrefix), cmp.Or(n.SubjectPrefix, defaultPrefix); op != np {
			changed("subject_prefix", fmt.Sprintf("changed from %q to %q", op, np))
		}
		if o.TLS != n.TLS {
			changed("tls", "changed (a connection's TLS is set when it is dialled)")
		}
		if o.Auth != n.Auth {
			changed("auth", "changed (a connection's credentials are set when it is dialled)")
		}
		if o.DLQ != n.DLQ {
			changed("dlq", fmt.Sprintf("changed from %+v to %+v (the dead-letter stream is made at start)", o.DLQ, n.DLQ))
		}
	}
	return errors.Join(errs...)
}

// routeNames names configured routes for the reload's log: "GET,POST
// /path", or the path alone for every method.
func routeNames(rs []RouteConfig) []string {
	out := make([]string, len(rs))
	for i := range rs {
		out[i] = rs[i].Path
		if len(rs[i].Methods) > 0 {
			out[i] = strings.Join(routeMethods(rs[i].Methods), ",") + " " + rs[i].Path
		}
	}
	return out
}

func pluginNames(ps []PluginConfig) []string {
	out := make([]string, len(ps))
	for i := range ps {
		out[i] = ps[i].Name
	}
	return out
}

// diffNames returns the names in now but not in old, and those in old but
// not in now, sorted.
func diffNames(old, now []string) (added, removed []string) {
	for _, n := range now {
		if !slices.Contains(old, n) {
			added = append(added, n)
		}
	}
	for _, o := range old {
		if !slices.Contains(now, o) {
			removed = append(removed, o)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}
