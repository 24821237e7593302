package gateway

import (
	"cmp"
	"maps"
	"slices"
)

// routeOwner is who holds a route: a function and its pattern, or, with no
// function, a configured route.
type routeOwner struct {
	function string
	route    string
}

// owner names the holder for logs and the conflicts metric.
func (o routeOwner) owner() string {
	if o.function == "" {
		return "configured route"
	}
	return o.function
}

// reportConflicts logs the function routes that lost their route to
// another holder (now, by loser) and sets the conflicts gauge to them. A
// conflict is logged at WARN when it appears, or when its winner changes;
// one that lasts across route updates (every registry change installs the
// table anew) is not repeated.
func (g *Gateway) reportConflicts(before, now map[routeOwner]routeOwner) {
	g.met.routeConflicts.Reset()
	for _, loser := range slices.SortedFunc(maps.Keys(now), func(a, b routeOwner) int {
		return cmp.Or(cmp.Compare(a.route, b.route), cmp.Compare(a.function, b.function))
	}) {
		winner := now[loser]
		g.met.routeConflicts.WithLabelValues(loser.route, loser.function, winner.owner()).Set(1)
		if prev, ok := before[loser]; ok && prev == winner {
			continue
		}
		if winner.function == "" {
			g.log.Warn("gateway: configured route wins over function route: the function's route is not installed",
				"route", loser.route, "lost", loser.function, "won", winner.owner(), "won_route", winner.route)
			continue
		}
		g.log.Warn("gateway: function route conflict: the function whose name sorts first keeps the route, the other's is not installed",
			"route", loser.route, "lost", loser.function, "won", winner.function, "won_route", winner.route)
	}
}
