package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
)

// routeTable is an installed route table: a chi mux, and the routes whose
// pattern is a plain path (no parameter, no wildcard) by that path.
// ServeHTTP answers those without chi, which copies every request
// (WithContext) to attach its routing context and walks its tree: a plain
// path needs neither, and it is the common case of function routes.
type routeTable struct {
	mux   *chi.Mux
	exact map[string][]*route // in mount order
	// lost are the function routes left out because another holds their
	// route (loser -> winner), so the next table logs only new conflicts.
	lost map[routeOwner]routeOwner
}

func newRouteTable(notFound, methodNotAllowed http.HandlerFunc) *routeTable {
	mux := chi.NewMux()
	mux.NotFound(notFound)
	mux.MethodNotAllowed(methodNotAllowed)
	return &routeTable{mux: mux, exact: map[string][]*route{}}
}

// add mounts rt, served by h. A pattern chi refuses (it panics on a
// conflict) is an error and leaves rt out.
func (t *routeTable) add(rt *route, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("route %q: %v", rt.pattern, v)
		}
	}()
	if len(rt.methods) == 0 {
		t.mux.Handle(rt.pattern, h)
	}
	for _, m := range rt.methods {
		t.mux.Method(m, rt.pattern, h)
	}
	if !strings.ContainsAny(rt.pattern, "{*") {
		t.exact[rt.pattern] = append(t.exact[rt.pattern], rt)
	}
	return nil
}

// match returns the route chi would pick for r among the plain-path ones,
// or nil to let chi decide (other patterns, 404, 405, and requests a parent
// chi router hands over, which chi routes on what is left of the path).
func (t *routeTable) match(r *http.Request) *route {
	if len(t.exact) == 0 || chi.RouteContext(r.Context()) != nil {
		return nil
	}
	// chi routes on the escaped path when there is one.
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	rts := t.exact[path]
	// In chi the last route mounted for a method wins, and a route without
	// methods takes those chi knows (anything else falls through to it).
	for i := len(rts) - 1; i >= 0; i-- {
		rt := rts[i]
		if len(rt.methods) == 0 && slices.Contains(httpMethods[:], r.Method) || slices.Contains(rt.methods, r.Method) {
			return rt
		}
	}
	return nil
}
