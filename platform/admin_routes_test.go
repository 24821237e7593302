package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/registry"
)

// wantRouteConflict checks a 409 route-conflict problem listing conflicts,
// blaming option.
func wantRouteConflict(t *testing.T, resp *http.Response, b []byte, option string, conflicts ...platform.RouteConflict) platform.Problem {
	t.Helper()
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %s: %s, want 409 problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	p := decode[platform.Problem](t, b)
	if p.Type != platform.ProblemRouteConflict || p.Option != option || !reflect.DeepEqual(p.Conflicts, conflicts) {
		t.Fatalf("problem %+v, want type route-conflict, option %q, conflicts %+v", p, option, conflicts)
	}
	for _, c := range conflicts {
		if !strings.Contains(p.Detail, fmt.Sprintf("%q", c.Route)) || !strings.Contains(p.Detail, fmt.Sprintf("%q", c.Function+c.Reserved)) {
			t.Errorf("detail %q does not name route %q and its holder", p.Detail, c.Route)
		}
	}
	return p
}

func (a *adminEnv) active(name string) (registry.Record, error) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.reg.Get(ctx, name)
}

// A deploy asking for a route another active function holds (the same
// pattern, or one chi files as the same route) is refused with 409 naming
// the holder, and stores nothing; the holder redeploys freely.
func TestAdminRefusesTakenRoute(t *testing.T) {
	a := newAdminEnv(t, nil)
	hello := guest(t, helloDir)
	if resp, b := a.deployRaw("/v1/functions/hello?route=/hello&route=/users/{id}", hello); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy hello: %d %s", resp.StatusCode, b)
	}

	// "aaa" sorts before "hello": the gateway would have given it /hello.
	resp, b := a.deployRaw("/v1/functions/aaa?route=/free&route=/hello&route=/users/{name}", hello)
	p := wantRouteConflict(t, resp, b, "route",
		platform.RouteConflict{Route: "/hello", Function: "hello", HeldAs: "/hello"},
		platform.RouteConflict{Route: "/users/{name}", Function: "hello", HeldAs: "/users/{id}"})
	if !strings.Contains(p.Detail, "only parameter names differ") {
		t.Errorf("detail %q does not say why /users/{name} is /users/{id}", p.Detail)
	}
	// "t1" sorts after: refused alike rather than deployed with a dead route.
	resp, b = a.deployRaw("/v1/functions/t1?route=/hello", hello)
	wantRouteConflict(t, resp, b, "route", platform.RouteConflict{Route: "/hello", Function: "hello", HeldAs: "/hello"})
	for _, name := range []string{"aaa", "t1"} {
		if _, err := a.active(name); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("refused deploy of %s stored something: %v", name, err)
		}
	}

	// The holder keeps its routes across versions; others take free ones.
	if resp, b := a.deployRaw("/v1/functions/hello?route=/hello&route=/users/{id}", hello); resp.StatusCode != http.StatusCreated {
		t.Fatalf("redeploy hello: %d %s", resp.StatusCode, b)
	}
	if resp, b := a.deployRaw("/v1/functions/aaa?route=/free&route=/users/{id}/posts", hello); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy aaa on free routes: %d %s", resp.StatusCode, b)
	}
	// Deleting the holder frees its routes.
	if resp, b := a.do(http.MethodDelete, "/v1/functions/hello", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete hello: %d %s", resp.StatusCode, b)
	}
	if resp, b := a.deployRaw("/v1/functions/t1?route=/hello", hello); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy t1 on the freed /hello: %d %s", resp.StatusCode, b)
	}
}

// A rollback to a version whose routes another function has taken since is
// refused with 409 and changes nothing; once they are free it goes through.
func TestAdminRollbackRefusesTakenRoute(t *testing.T) {
	a := newAdminEnv(t, nil)
	hello := guest(t, helloDir)
	for _, q := range []string{"route=/hello", "route=/v2"} { // v1 on /hello, v2 moves to /v2
		if resp, b := a.deployRaw("/v1/functions/hello?"+q, hello); resp.StatusCode != http.StatusCreated {
			t.Fatalf("deploy hello %s: %d %s", q, resp.StatusCode, b)
		}
	}
	if resp, b := a.deployRaw("/v1/functions/aaa?route=/hello", hello); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy aaa on /hello, which hello left: %d %s", resp.StatusCode, b)
	}

	for _, path := range []string{"/v1/functions/hello/rollback", "/v1/functions/hello/rollback?to=1"} {
		resp, b := a.do(http.MethodPost, path, nil, nil)
		p := wantRouteConflict(t, resp, b, "", platform.RouteConflict{Route: "/hello", Function: "aaa", HeldAs: "/hello"})
		if !strings.Contains(p.Detail, "version 1's routes are taken") {
			t.Errorf("detail %q does not name the version", p.Detail)
		}
		if rec, err := a.active("hello"); err != nil || rec.Version != 2 {
			t.Fatalf("after a refused rollback hello is %+v, %v: want version 2 still active", rec, err)
		}
	}
	// Rolling back to the active version changes nothing, conflicts or not.
	if resp, b := a.do(http.MethodPost, "/v1/functions/hello/rollback?to=2", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("rollback to the active version: %d %s", resp.StatusCode, b)
	}

	if resp, b := a.do(http.MethodDelete, "/v1/functions/aaa", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete aaa: %d %s", resp.StatusCode, b)
	}
	resp, b := a.do(http.MethodPost, "/v1/functions/hello/rollback", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("rollback once /hello is free: %d %s", resp.StatusCode, b)
	}
	if rec := decode[registry.Record](t, b); rec.Version != 1 || !reflect.DeepEqual(rec.Routes, []string{"/hello"}) {
		t.Fatalf("rolled back to %+v, want version 1 on /hello", rec)
	}
	// With nothing before version 1, the registry's answer stands.
	if resp, b := a.do(http.MethodPost, "/v1/functions/hello/rollback", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("rollback past the first version: %d %s, want 404", resp.StatusCode, b)
	}
}

// Routes under the paths the HTTP listener answers itself
// (AdminConfig.ReservedPaths, as nylon serve's chat page) are refused: the
// gateway would never see them.
func TestAdminRefusesReservedRoute(t *testing.T) {
	a := newAdminEnv(t, func(c *platform.AdminConfig) {
		c.ReservedPaths = map[string]bool{"/chat/": true, "/chat/ws": false}
	})
	hello := guest(t, helloDir)
	for _, tc := range []struct{ route, reserved string }{
		{"/chat/", "/chat/"},
		{"/chat", "/chat/"}, // the listener redirects it to /chat/
		{"/chat/x", "/chat/"},
		{"/chat/x/{y}", "/chat/"},
		{"/chat/*", ""}, // /chat/ws still reaches it
		{"/chat/{room}", ""},
		{"/chat/ws", ""},
		{"/chatroom", ""},
	} {
		resp, b := a.deployRaw("/v1/functions/fn?route="+tc.route, hello)
		if tc.reserved == "" {
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("route %s: %d %s, want 201", tc.route, resp.StatusCode, b)
			}
			continue
		}
		p := wantRouteConflict(t, resp, b, "route", platform.RouteConflict{Route: tc.route, Reserved: tc.reserved})
		if !strings.Contains(p.Detail, "would never see it") {
			t.Errorf("detail %q does not say why", p.Detail)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := platform.NewAdmin(ctx, platform.AdminConfig{Registry: a.reg, Host: a.host, ReservedPaths: map[string]bool{"chat/": true}})
	if !errors.Is(err, platform.ErrInvalidConfig) || !strings.Contains(err.Error(), "ReservedPaths") {
		t.Fatalf("NewAdmin with a relative reserved path: %v, want ErrInvalidConfig naming ReservedPaths", err)
	}
}

// A name with an escaped byte reaches the admin API and gets problem+json;
// a malformed escape ("a%zz") is refused by net/http before any handler
// runs, with its own plain-text 400 (docs/NODE.md says so).
func TestAdminEscapesInName(t *testing.T) {
	a := newAdminEnv(t, nil)
	resp, b := a.deployRaw("/v1/functions/a%25zz", guest(t, helloDir))
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("a%%25zz: %d %s: %s, want 400 problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if p := decode[platform.Problem](t, b); p.Type != platform.ProblemInvalidName || !strings.Contains(p.Detail, `character '%' at 1`) {
		t.Fatalf("a%%25zz: problem %+v", p)
	}

	conn, err := net.Dial("tcp", a.admin.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PUT /v1/functions/a%zz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	raw, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Body.Close()
	if raw.StatusCode != http.StatusBadRequest || raw.Header.Get("X-Request-Id") != "" {
		t.Fatalf("a%%zz: %d, X-Request-Id %q: want net/http's own 400, before our middleware", raw.StatusCode, raw.Header.Get("X-Request-Id"))
	}
}

// Deploys racing for one route through one admin API: exactly one gets it,
// the others 409 (the check and the store are one step).
func TestAdminConcurrentDeploysOfOneRoute(t *testing.T) {
	a := newAdminEnv(t, nil)
	hello := guest(t, helloDir)
	const n = 8
	codes := make(chan int, n)
	for i := range n {
		go func() {
			req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v1/functions/racer%d?route=/race/{p%d}", a.base, i, i), bytes.NewReader(hello))
			if err != nil {
				codes <- 0
				return
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/wasm")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	got := map[int]int{}
	for range n {
		got[<-codes]++
	}
	if got[http.StatusCreated] != 1 || got[http.StatusConflict] != n-1 {
		t.Fatalf("statuses %v: want one 201 and %d 409", got, n-1)
	}
}
