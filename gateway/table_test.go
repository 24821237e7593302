package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestRouteTableMatchesLikeChi checks the plain-path shortcut against chi
// itself: whenever match picks a route, chi picks the same one for that
// request, and the shortcut does take the plain paths it can.
func TestRouteTableMatchesLikeChi(t *testing.T) {
	routes := []*route{
		{pattern: "/a", methods: []string{"GET"}},
		{pattern: "/a/{id}"},
		{pattern: "/users/me", methods: []string{"GET", "DELETE"}},
		{pattern: "/users/{id}"},
		{pattern: "/b"},
		{pattern: "/b", methods: []string{"POST"}}, // mounted later: wins POST
		{pattern: "/c", methods: []string{"PUT"}},
		{pattern: "/c"}, // mounted later: wins every method
		{pattern: "/files/*"},
		{pattern: "/caf%C3%A9"},
		{pattern: "/"},
	}
	var chose *route
	tab := newRouteTable(func(http.ResponseWriter, *http.Request) { chose = nil }, func(http.ResponseWriter, *http.Request) { chose = nil })
	for _, rt := range routes {
		if err := tab.add(rt, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { chose = rt })); err != nil {
			t.Fatal(err)
		}
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "QUERY", "get", "PURGE"}
	paths := []string{"/", "/a", "/a/", "/a/1", "/users/me", "/users/7", "/b", "/c", "/files/x/y", "/files", "/caf%C3%A9", "/nope"}
	shortcut := 0
	for _, m := range methods {
		for _, p := range paths {
			r := httptest.NewRequest(m, p, nil)
			chose = &route{pattern: "unset"}
			tab.mux.ServeHTTP(httptest.NewRecorder(), r)
			got := tab.match(r)
			if got == nil {
				continue
			}
			shortcut++
			if got != chose {
				t.Errorf("%s %s: shortcut picks %s %v, chi picks %v", m, p, got.pattern, got.methods, describe(chose))
			}
		}
	}
	// GET of /a, /users/me, /b, /c, /caf%C3%A9 and / at least.
	if shortcut < 6 {
		t.Errorf("the shortcut took %d requests: want it to take the plain paths", shortcut)
	}

	// A request routed by a parent chi router goes through chi, which
	// routes on what is left of its path.
	r := httptest.NewRequest("GET", "/a", nil)
	r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, chi.NewRouteContext()))
	if tab.match(r) != nil {
		t.Error("the shortcut took a request a parent chi router handed over")
	}
}

func describe(rt *route) any {
	if rt == nil {
		return "none (404/405)"
	}
	return rt.pattern + " " + func() string {
		if len(rt.methods) == 0 {
			return "[all]"
		}
		return rt.methods[0] + "..."
	}()
}
