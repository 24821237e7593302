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
//
// When max_inflight changes, the calls in flight keep their slots in the
// old bound and the new one starts empty: until they finish, up to both
// bounds' worth of calls may be in flight. A change of overflow_policy
// alone keeps the count.
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
	if err := needsRestart(old.cfg.Messaging, cfg.Messaging); err != nil {
		return fmt.Errorf("gateway: reload: %w", err)
	}
	c := &conf{cfg: cfg, msgs: make([]*messaging, len(old.msgs))}
	for i, m := range old.msgs {
		c.msgs[i] = m
		if len(cfg.Messaging) > 0 { // else the implicit config, unchanged
			c.msgs[i] = m.reconfigured(cfg.Messaging[i])
		}
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

// reconfigured is m with cfg's caller settings and limiter: the
// connection, prefix, reply inbox and dead-letter stream stay (cfg may not
// change them, see needsRestart).
func (m *messaging) reconfigured(cfg MessagingConfig) *messaging {
	n := *m
	n.cfg = cfg
	n.limiter = m.limiter.reconfigured(cfg.MaxInflight, cfg.OverflowPolicy)
	return &n
}

// needsRestart reports, joined, the changes from old to now that only New
// can make, each naming its field; values that may hold secrets (servers,
// tls, auth) are not shown.
func needsRestart(old, now []MessagingConfig) error {
	names := func(ms []MessagingConfig) []string {
		out := make([]string, len(ms))
		for i := range ms {
			out[i] = ms[i].Name
		}
		return out
	}
	if on, nn := names(old), names(now); !slices.Equal(on, nn) {
		return fmt.Errorf("messaging: configs [%s], were [%s]: adding, removing, renaming or reordering one changes the connections, reply inboxes and dead-letter streams set up at start (and the first carries the function routes): %w",
			strings.Join(nn, " "), strings.Join(on, " "), ErrRestartRequired)
	}
	var errs []error
	for i := range old {
		o, n := &old[i], &now[i]
		path := fmt.Sprintf("messaging[%d]", i)
		changed := func(field, detail string) {
			errs = append(errs, fmt.Errorf("%s.%s: %s: %w", path, field, detail, ErrRestartRequired))
		}
		if ot, nt := cmp.Or(o.Type, DefaultMessagingType), cmp.Or(n.Type, DefaultMessagingType); ot != nt {
			changed("type", fmt.Sprintf("changed from %q to %q", ot, nt))
		}
		if !slices.Equal(o.Servers, n.Servers) {
			changed("servers", "changed (a connection of its own is dialled at start)")
		}
		if o.SubjectPrefix != n.SubjectPrefix {
			changed("subject_prefix", fmt.Sprintf("changed from %q to %q", o.SubjectPrefix, n.SubjectPrefix))
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
