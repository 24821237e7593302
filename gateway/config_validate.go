package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/nylon-functions/nylon/protocol"
)

// Validate checks the whole configuration once: enum values, ranges,
// references between blocks and route patterns. Every problem is reported
// (joined), each a *ConfigError naming its path and wrapping
// ErrInvalidConfig. ParseConfig and New call it.
func (c *Config) Validate() error { return c.validate() }

type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &ConfigError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	switch len(p) {
	case 0:
		return nil
	case 1:
		return p[0]
	}
	return errors.Join(p...)
}

func (c *Config) validate() error {
	var ps problems
	msgs := map[string]bool{}
	for i := range c.Messaging {
		m := &c.Messaging[i]
		path := fmt.Sprintf("messaging[%d]", i)
		switch {
		case m.Name == "":
			ps.add(path+".name", "required")
		case msgs[m.Name]:
			ps.add(path+".name", "%q is defined twice", m.Name)
		}
		msgs[m.Name] = true
		m.validate(path, &ps)
	}
	plugins := map[string]*PluginConfig{}
	for i := range c.Plugins {
		p := &c.Plugins[i]
		path := fmt.Sprintf("plugins[%d]", i)
		switch {
		case p.Name == "":
			ps.add(path+".name", "required")
		case plugins[p.Name] != nil:
			ps.add(path+".name", "%q is defined twice", p.Name)
		default:
			plugins[p.Name] = p
		}
		p.validate(path, msgs, &ps)
	}
	seen := map[string]string{}
	for i := range c.Routes {
		r := &c.Routes[i]
		path := fmt.Sprintf("routes[%d]", i)
		r.validate(path, plugins, msgs, &ps)
		for _, m := range routeMethods(r.Methods) {
			// Keyed as chi files patterns: "/a/{x}" and "/a/{y}" are one
			// route, and the one mounted last would replace the other.
			key := m + " " + protocol.RouteKey(r.Path)
			if prev, ok := seen[key]; ok && r.Path != "" {
				ps.add(path+".path", "%s %s is already routed by %s (patterns that differ only in parameter names are one route)", m, r.Path, prev)
			}
			seen[key] = path
		}
	}
	return ps.err()
}

func (m *MessagingConfig) validate(path string, ps *problems) {
	if m.Type != "" && m.Type != DefaultMessagingType {
		ps.add(path+".type", "%q is not supported (want nats)", m.Type)
	}
	for j, s := range m.Servers {
		if err := validateServerURL(s); err != nil {
			ps.add(fmt.Sprintf("%s.servers[%d]", path, j), "%v", err)
		}
	}
	if m.SubjectPrefix != "" {
		if err := protocol.ValidatePrefix(m.SubjectPrefix); err != nil {
			ps.add(path+".subject_prefix", "%v", err)
		}
	}
	checkMs(ps, path+".request_timeout_ms", m.RequestTimeoutMs, maxConfiguredTimeoutMs)
	if m.MaxInflight < 0 || m.MaxInflight > maxConfiguredInflight {
		ps.add(path+".max_inflight", "%d is out of range 0..%d", m.MaxInflight, maxConfiguredInflight)
	}
	switch m.OverflowPolicy {
	case "", OverflowQueue, OverflowReject, OverflowShed:
	default:
		ps.add(path+".overflow_policy", "%q is not one of queue|reject|shed", m.OverflowPolicy)
	}
	m.Retry.validate(path+".retry", ps)
	if m.TLS.CertFile != "" && m.TLS.KeyFile == "" {
		ps.add(path+".tls.key_file", "required with cert_file")
	}
	if m.TLS.KeyFile != "" && m.TLS.CertFile == "" {
		ps.add(path+".tls.cert_file", "required with key_file")
	}
	a := &m.Auth
	n := 0
	for _, set := range []bool{a.NKey != "", a.CredsFile != "", a.User != "" || a.Password != "", a.Token != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		ps.add(path+".auth", "set only one of nkey, creds_file, user/password and token")
	case a.Enabled && n == 0:
		ps.add(path+".auth", "enabled without nkey, creds_file, user/password or token")
	case (a.User == "") != (a.Password == ""):
		ps.add(path+".auth", "user and password go together")
	}
	if m.DLQ.MaxMsgs < 0 {
		ps.add(path+".dlq.max_msgs", "%d is negative", m.DLQ.MaxMsgs)
	}
	if m.DLQ.MaxBytes < 0 {
		ps.add(path+".dlq.max_bytes", "%d is negative", m.DLQ.MaxBytes)
	}
	if m.DLQ.MaxAgeHours < 0 {
		ps.add(path+".dlq.max_age_hours", "%d is negative", m.DLQ.MaxAgeHours)
	}
	if m.DLQ.Replicas < 0 || m.DLQ.Replicas > MaxReplicas {
		ps.add(path+".dlq.replicas", "%d is out of range 1..%d", m.DLQ.Replicas, MaxReplicas)
	}
}

// validateServerURL accepts what nats.go dials: nats, tls, ws and wss URLs,
// and a bare host:port (taken as nats://).
func validateServerURL(s string) error {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("server url %q: %w", s, err)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("server url %q: scheme %q is not one of nats|tls|ws|wss", s, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("server url %q: no host", s)
	}
	return nil
}

func checkMs(ps *problems, path string, v, max int) {
	if v < 0 {
		ps.add(path, "%d is negative", v)
	} else if v > max {
		ps.add(path, "%d is over the limit of %d", v, max)
	}
}

func (r *RetryConfig) validate(path string, ps *problems) {
	if r.Max != nil && (*r.Max < 0 || *r.Max > maxConfiguredRetries) {
		ps.add(path+".max", "%d is out of range 0..%d", *r.Max, maxConfiguredRetries)
	}
	if r.BackoffMsInitial != nil {
		checkMs(ps, path+".backoff_ms_initial", *r.BackoffMsInitial, maxConfiguredBackoffMs)
	}
	if r.BackoffMsMax != nil {
		checkMs(ps, path+".backoff_ms_max", *r.BackoffMsMax, maxConfiguredBackoffMs)
	}
	if r.BackoffMsInitial != nil && r.BackoffMsMax != nil && *r.BackoffMsInitial > *r.BackoffMsMax {
		ps.add(path+".backoff_ms_initial", "%d is above backoff_ms_max %d", *r.BackoffMsInitial, *r.BackoffMsMax)
	}
	switch r.Jitter {
	case "", JitterFull, JitterEqual, JitterNone:
	default:
		ps.add(path+".jitter", "%q is not one of full|equal|none", r.Jitter)
	}
}

func (p *PhasePolicy) validate(path string, ps *problems) {
	checkMs(ps, path+".timeout_ms", p.TimeoutMs, maxConfiguredTimeoutMs)
	switch p.OnError {
	case "", OnErrorContinue, OnErrorEnd, OnErrorRetry:
	default:
		ps.add(path+".on_error", "%q is not one of continue|end|retry", p.OnError)
	}
	p.Retry.validate(path+".retry", ps)
	if p.MaxPayloadBytes < 0 {
		ps.add(path+".max_payload_bytes", "%d is negative", p.MaxPayloadBytes)
	}
}

func (p *PluginConfig) validate(path string, msgs map[string]bool, ps *problems) {
	if p.Type != "" && p.Type != DefaultPluginType {
		ps.add(path+".type", "%q is not supported (want messaging)", p.Type)
	}
	switch {
	case p.Messaging == "":
		ps.add(path+".messaging", "required")
	case !msgs[p.Messaging]:
		ps.add(path+".messaging", "%q is not a messaging config", p.Messaging)
	}
	if p.Group != "" && strings.ContainsAny(p.Group, " \t\r\n.*>") {
		ps.add(path+".group", "%q is not a queue group name", p.Group)
	}
	fn := p.function()
	if fn != "" {
		if err := protocol.ValidateName(fn); err != nil {
			field := ".function"
			if p.Function == "" {
				field = ".name" // the function defaults to the name
			}
			ps.add(path+field, "%v", err)
		}
	}
	p.PhasePolicy.validate(path, ps)
	for key, pp := range p.PerPhase {
		ph, err := protocol.ParsePhase(key)
		if err != nil || ph == protocol.PhaseEvent {
			ps.add(path+".per_phase."+key, "unknown phase (want request_filter|response_filter|response_body_filter|logging)")
			continue
		}
		pp.validate(path+".per_phase."+key, ps)
	}
}

// function is the function whose subjects the plugin calls.
func (p *PluginConfig) function() string {
	if p.Function != "" {
		return p.Function
	}
	return p.Name
}

func (r *RouteConfig) validate(path string, plugins map[string]*PluginConfig, msgs map[string]bool, ps *problems) {
	if r.Path == "" {
		ps.add(path+".path", "required")
	} else if err := checkPattern(r.Path); err != nil {
		ps.add(path+".path", "%v", err)
	}
	for j, m := range r.Methods {
		if !knownMethod(strings.ToUpper(m)) {
			ps.add(fmt.Sprintf("%s.methods[%d]", path, j), "%q is not an HTTP method", m)
		}
	}
	switch {
	case r.Upstream != "" && r.Function != "":
		ps.add(path, "set upstream or function, not both")
	case r.Upstream == "" && r.Function == "":
		ps.add(path, "set upstream or function")
	case r.Upstream != "":
		u, err := url.Parse(r.Upstream)
		switch {
		case err != nil:
			ps.add(path+".upstream", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			ps.add(path+".upstream", "%q: scheme must be http or https", r.Upstream)
		case u.Host == "":
			ps.add(path+".upstream", "%q: no host", r.Upstream)
		case u.RawQuery != "" || u.Fragment != "":
			ps.add(path+".upstream", "%q: query and fragment are not allowed", r.Upstream)
		}
		if r.Messaging != "" {
			ps.add(path+".messaging", "only for a function origin")
		}
	case plugins[r.Function] != nil:
		if r.Messaging != "" {
			ps.add(path+".messaging", "the origin is plugin %q, which names its own messaging", r.Function)
		}
	default:
		if err := protocol.ValidateName(r.Function); err != nil {
			ps.add(path+".function", "%v", err)
		}
		// Without messaging, the first config (or New's implicit default)
		// carries the origin's calls.
		if r.Messaging != "" && !msgs[r.Messaging] {
			ps.add(path+".messaging", "%q is not a messaging config", r.Messaging)
		}
	}
	for j, name := range r.Plugins {
		if plugins[name] == nil {
			ps.add(fmt.Sprintf("%s.plugins[%d]", path, j), "%q is not a plugin", name)
		}
	}
	if r.StripPrefix != "" && !strings.HasPrefix(r.StripPrefix, "/") {
		ps.add(path+".strip_prefix", "%q must begin with '/'", r.StripPrefix)
	}
	if r.MaxBodyBytes < 0 {
		ps.add(path+".max_body_bytes", "%d is negative", r.MaxBodyBytes)
	}
	checkMs(ps, path+".response_header_timeout_ms", r.ResponseHeaderTimeoutMs, maxConfiguredTimeoutMs)
	if r.ResponseHeaderTimeoutMs != 0 && r.Upstream == "" {
		ps.add(path+".response_header_timeout_ms", "only for an upstream origin")
	}
}

var httpMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

func knownMethod(m string) bool {
	for _, k := range httpMethods {
		if k == m {
			return true
		}
	}
	return false
}

// routeMethods is the route's methods upper-cased, or "*" for all.
func routeMethods(ms []string) []string {
	if len(ms) == 0 {
		return []string{"*"}
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = strings.ToUpper(m)
	}
	return out
}

// checkPattern reports whether chi accepts pattern: chi panics on a bad one,
// which must never happen while serving, so patterns are tried on a
// throwaway mux first.
func checkPattern(pattern string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("pattern %q: %v", pattern, v)
		}
	}()
	chi.NewMux().Handle(pattern, http.NotFoundHandler())
	return nil
}
