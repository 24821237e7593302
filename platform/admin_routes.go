package platform

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// RouteConflict is a route a deploy or rollback asks for that the gateway
// could not give the function: another active function holds it, or the
// HTTP listener in front of the gateway answers its paths itself. Listed in
// the "conflicts" member of a 409 route-conflict problem.
type RouteConflict struct {
	// Route is the pattern asked for.
	Route string `json:"route"`
	// Function holds the route, under its own pattern HeldAs: the same, or
	// one the gateway's router (chi) files as the same route, such as
	// /a/{x} for /a/{y} (protocol.RouteKey).
	Function string `json:"function,omitempty"`
	HeldAs   string `json:"held_as,omitempty"`
	// Reserved is the AdminConfig.ReservedPaths pattern the listener
	// answers the route's paths under.
	Reserved string `json:"reserved,omitempty"`
}

func (c RouteConflict) String() string {
	switch {
	case c.Reserved != "":
		return fmt.Sprintf("route %q: the HTTP listener in front of the gateway answers %q itself, so the gateway would never see it", c.Route, c.Reserved)
	case c.HeldAs != c.Route:
		return fmt.Sprintf("route %q is held by function %q as %q (the same route to the gateway: only parameter names differ)", c.Route, c.Function, c.HeldAs)
	}
	return fmt.Sprintf("route %q is held by function %q", c.Route, c.Function)
}

// reservedPaths is AdminConfig.ReservedPaths, checked: literal paths in
// http.ServeMux syntax, true for those the listener serves itself.
type reservedPaths map[string]bool

// newReservedPaths checks AdminConfig.ReservedPaths.
func newReservedPaths(m map[string]bool) (reservedPaths, error) {
	for _, p := range slices.Sorted(maps.Keys(m)) {
		if p == "" || p[0] != '/' || strings.ContainsAny(p, "{}* \t?#") {
			return nil, fmt.Errorf("%w: ReservedPaths: %q: want a literal path such as \"/chat/\" (a subtree) or \"/chat/ws\"", ErrInvalidConfig, p)
		}
	}
	return reservedPaths(maps.Clone(m)), nil
}

// by returns the pattern under which the listener answers every path route
// matches itself, or "" when the gateway sees at least one of them. It
// follows http.ServeMux: an exact pattern wins, then the longest subtree
// ("/chat/") the path is in, and a path naming a subtree without its slash
// ("/chat") is redirected into it.
func (rp reservedPaths) by(route string) string {
	if len(rp) == 0 {
		return ""
	}
	prefix := route
	literal := true
	if i := strings.IndexAny(route, "{*"); i >= 0 {
		prefix, literal = route[:i], false
	}
	if literal {
		if own, ok := rp[route]; ok {
			if own {
				return route
			}
			return ""
		}
		if !strings.HasSuffix(route, "/") && rp[route+"/"] {
			return route + "/"
		}
	} else {
		// A parameter reaches the gateway if some path it matches is one
		// the listener hands over (the chat page's /chat/ws in /chat/{x}).
		for p, own := range rp {
			if !own && strings.HasPrefix(p, prefix) {
				return ""
			}
		}
	}
	subtree := ""
	for p := range rp {
		if strings.HasSuffix(p, "/") && strings.HasPrefix(prefix, p) && len(p) > len(subtree) {
			subtree = p
		}
	}
	if subtree != "" && rp[subtree] {
		return subtree
	}
	return ""
}

// routeConflicts returns the routes of function name the gateway could not
// give it: held by another active function, or reserved by the listener.
// The function's own routes never conflict, so a redeploy or a rollback
// keeps them. Two deploys racing for one route may both pass; the gateway
// then keeps it for the function whose name sorts first, which is also the
// holder named here when several functions hold one (List is by name).
func (a *Admin) routeConflicts(ctx context.Context, name string, routes []string) ([]RouteConflict, error) {
	if len(routes) == 0 {
		return nil, nil
	}
	var out []RouteConflict
	for _, rt := range routes {
		if p := a.reserved.by(rt); p != "" {
			out = append(out, RouteConflict{Route: rt, Reserved: p})
		}
	}
	recs, err := a.reg.List(ctx)
	if err != nil {
		return nil, err
	}
	held := map[string]RouteConflict{}
	for _, rec := range recs {
		if rec.Name == name {
			continue
		}
		for _, rt := range rec.Routes {
			if k := protocol.RouteKey(rt); held[k].Function == "" {
				held[k] = RouteConflict{Function: rec.Name, HeldAs: rt}
			}
		}
	}
	for _, rt := range routes {
		if c, ok := held[protocol.RouteKey(rt)]; ok {
			c.Route = rt
			out = append(out, c)
		}
	}
	return out, nil
}

// routeConflictProblem is the 409 for conflicts: what the detail starts
// with, and the request option at fault ("" for none).
func routeConflictProblem(what, option string, conflicts []RouteConflict) Problem {
	msgs := make([]string, len(conflicts))
	for i, c := range conflicts {
		msgs[i] = c.String()
	}
	p := problem(ProblemRouteConflict, http.StatusConflict, what+": "+strings.Join(msgs, "; "))
	p.Option = option
	p.Conflicts = conflicts
	return p
}

// checkRoutes answers 409 and reports false when routes conflict; a
// registry failure is answered as such.
func (a *Admin) checkRoutes(w http.ResponseWriter, r *http.Request, name, what, option string, routes []string) bool {
	conflicts, err := a.routeConflicts(r.Context(), name, routes)
	if err != nil {
		a.registryError(w, r, fmt.Errorf("checking routes: %w", err))
		return false
	}
	if len(conflicts) > 0 {
		writeProblem(w, r, routeConflictProblem(what, option, conflicts))
		return false
	}
	return true
}

// rollbackTarget is the retained version a rollback of name to `to` (0: the
// one before the active) would activate, as registry.Rollback picks it; ok
// is false when there is none, which Rollback then reports.
func (a *Admin) rollbackTarget(ctx context.Context, name string, to uint64) (registry.Record, bool, error) {
	recs, err := a.reg.Versions(ctx, name)
	if err != nil {
		return registry.Record{}, false, err
	}
	var active uint64
	for _, rec := range recs {
		if rec.Active {
			active = rec.Version
		}
	}
	for _, rec := range recs { // newest first
		if (to != 0 && rec.Version == to) || (to == 0 && active != 0 && rec.Version < active) {
			return rec, true, nil
		}
	}
	return registry.Record{}, false, nil
}
