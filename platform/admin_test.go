package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

const testToken = "s3cret-token"

// adminEnv is an env with a node and a started admin API.
type adminEnv struct {
	*env
	admin   *platform.Admin
	base    string
	node    *platform.Node
	metrics *prometheus.Registry
}

func newAdminEnv(t *testing.T, adjust func(*platform.AdminConfig)) *adminEnv {
	t.Helper()
	e := newEnv(t)
	metrics := prometheus.NewRegistry()
	node := e.startNode("n1", withMetrics(metrics))
	cfg := platform.AdminConfig{
		Addr:     "127.0.0.1:0",
		Token:    testToken,
		Registry: e.reg,
		Host:     e.host,
		NATS:     e.nc,
		Metrics:  metrics,
		Health:   node,
		Logger:   testLogger(),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	a := startAdmin(t, cfg)
	return &adminEnv{env: e, admin: a, base: "http://" + a.Addr(), node: node, metrics: metrics}
}

// startAdmin starts an admin API with cfg, drained when the test ends.
func startAdmin(t *testing.T, cfg platform.AdminConfig) *platform.Admin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := platform.NewAdmin(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Drain(ctx)
	})
	return a
}

// do sends a request with the test token and returns the status and body.
func (a *adminEnv) do(method, path string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp, b
}

func (a *adminEnv) deployRaw(path string, wasm []byte) (*http.Response, []byte) {
	a.t.Helper()
	return a.do(http.MethodPut, path, bytes.NewReader(wasm), map[string]string{"Content-Type": "application/wasm"})
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, b)
	}
	return v
}

func TestAdminFunctionLifecycle(t *testing.T) {
	a := newAdminEnv(t, nil)
	hello := guest(t, helloDir)

	resp, b := a.deployRaw("/v1/functions/hello?route=/hello&route=/hi/{name}&config=greeting=hi&config=lang=en"+
		"&timeout=250ms&memory_mb=64&max_workers=3&max_body_bytes=65536&queue_group=hq&description=says+hello", hello)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", resp.StatusCode, b)
	}
	rec := decode[registry.Record](t, b)
	want := registry.Limits{TimeoutMS: 250, MemoryMB: 64, MaxWorkers: 3, MaxBodyBytes: 65536}
	if rec.Name != "hello" || rec.Version != 1 || !rec.Active || rec.Limits != want || rec.QueueGroup != "hq" ||
		!slices.Equal(rec.Routes, []string{"/hello", "/hi/{name}"}) || rec.Config["greeting"] != "hi" || rec.Config["lang"] != "en" ||
		rec.Description != "says hello" || !slices.Equal(rec.Phases, []string{"request_filter"}) || rec.Size != int64(len(hello)) {
		t.Errorf("record = %+v", rec)
	}
	if loc := resp.Header.Get("Location"); loc != "/v1/functions/hello" {
		t.Errorf("Location = %q", loc)
	}
	// The node picks the deployment up.
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		_, _, err := call(a.nc, "hello", request(protocol.PhaseRequestFilter, ""), time.Second)
		return err
	})

	// Multipart: module + spec JSON.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	spec, _ := mw.CreateFormField("spec")
	_, _ = spec.Write([]byte(`{"routes":["/v2"],"limits":{"timeout_ms":500},"description":"second"}`))
	mod, _ := mw.CreateFormFile("module", "hello.wasm")
	_, _ = mod.Write(hello)
	_ = mw.Close()
	resp, b = a.do(http.MethodPut, "/v1/functions/hello?max_workers=2", &form, map[string]string{"Content-Type": mw.FormDataContentType()})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("multipart deploy: %d %s", resp.StatusCode, b)
	}
	rec2 := decode[registry.Record](t, b)
	if rec2.Version != 2 || rec2.Limits.TimeoutMS != 500 || rec2.Limits.MaxWorkers != 2 || rec2.Description != "second" ||
		!slices.Equal(rec2.Routes, []string{"/v2"}) || rec2.SHA256 != rec.SHA256 {
		t.Errorf("multipart record = %+v", rec2)
	}

	resp, b = a.do(http.MethodGet, "/v1/functions", nil, nil)
	list := decode[platform.FunctionList](t, b)
	if resp.StatusCode != 200 || len(list.Functions) != 1 || list.Functions[0].Version != 2 {
		t.Errorf("list: %d %s", resp.StatusCode, b)
	}
	resp, b = a.do(http.MethodGet, "/v1/functions/hello", nil, nil)
	if got := decode[registry.Record](t, b); resp.StatusCode != 200 || got.Version != 2 || !got.Active {
		t.Errorf("get: %d %s", resp.StatusCode, b)
	}
	resp, b = a.do(http.MethodGet, "/v1/functions/hello/versions", nil, nil)
	vl := decode[platform.VersionList](t, b)
	if resp.StatusCode != 200 || vl.Active != 2 || len(vl.Versions) != 2 || vl.Versions[0].Version != 2 {
		t.Errorf("versions: %d %s", resp.StatusCode, b)
	}

	resp, b = a.do(http.MethodPost, "/v1/functions/hello/rollback?to=1", nil, nil)
	if got := decode[registry.Record](t, b); resp.StatusCode != 200 || got.Version != 1 || !got.Active {
		t.Errorf("rollback to=1: %d %s", resp.StatusCode, b)
	}
	resp, b = a.do(http.MethodPost, "/v1/functions/hello/rollback", strings.NewReader(`{"to": 2}`), map[string]string{"Content-Type": "application/json"})
	if got := decode[registry.Record](t, b); resp.StatusCode != 200 || got.Version != 2 {
		t.Errorf("rollback body to 2: %d %s", resp.StatusCode, b)
	}
	resp, b = a.do(http.MethodPost, "/v1/functions/hello/rollback", nil, nil)
	if got := decode[registry.Record](t, b); resp.StatusCode != 200 || got.Version != 1 {
		t.Errorf("rollback to the previous: %d %s", resp.StatusCode, b)
	}
	resp, b = a.do(http.MethodPost, "/v1/functions/hello/rollback?to=9", nil, nil)
	if p := decode[platform.Problem](t, b); resp.StatusCode != 404 || p.Type != platform.ProblemNotFound {
		t.Errorf("rollback to a missing version: %d %s", resp.StatusCode, b)
	}

	resp, b = a.do(http.MethodDelete, "/v1/functions/hello", nil, nil)
	if resp.StatusCode != http.StatusNoContent || len(b) != 0 {
		t.Errorf("delete: %d %s", resp.StatusCode, b)
	}
	for _, path := range []string{"/v1/functions/hello", "/v1/functions/hello/versions"} {
		resp, b = a.do(http.MethodGet, path, nil, nil)
		p := decode[platform.Problem](t, b)
		if resp.StatusCode != 404 || p.Type != platform.ProblemNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s after delete: %d %s", path, resp.StatusCode, b)
		}
	}
	resp, _ = a.do(http.MethodDelete, "/v1/functions/hello", nil, nil)
	if resp.StatusCode != 404 {
		t.Errorf("second delete: %d, want 404", resp.StatusCode)
	}
}

// registryState is everything a failed upload must leave untouched.
type registryState struct {
	Functions []registry.Record
	Versions  []registry.Record
	Modules   []string
}

func (a *adminEnv) state() registryState {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s registryState
	var err error
	if s.Functions, err = a.reg.List(ctx); err != nil {
		a.t.Fatal(err)
	}
	if s.Versions, err = a.reg.Versions(ctx, "hello"); err != nil {
		a.t.Fatal(err)
	}
	js := testutil.JetStream(a.t, a.nc)
	os, err := js.ObjectStore(ctx, registry.ModulesBucket("dev"))
	if err != nil {
		a.t.Fatal(err)
	}
	infos, err := os.List(ctx)
	if err != nil {
		a.t.Fatal(err)
	}
	for _, info := range infos {
		s.Modules = append(s.Modules, info.Name)
	}
	slices.Sort(s.Modules)
	return s
}

func TestAdminRejectsBadUploads(t *testing.T) {
	a := newAdminEnv(t, func(c *platform.AdminConfig) { c.MaxModuleBytes = 4 << 20 })
	hello := guest(t, helloDir)
	if resp, b := a.deployRaw("/v1/functions/hello", hello); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", resp.StatusCode, b)
	}
	before := a.state()

	// The smallest valid wasm module: magic and version, no sections.
	emptyModule := []byte("\x00asm\x01\x00\x00\x00")
	oversized := make([]byte, 5<<20)
	copy(oversized, hello)
	auth := map[string]string{"Content-Type": "application/wasm"}
	cases := []struct {
		name     string
		path     string
		body     io.Reader
		header   map[string]string
		status   int
		typ      string
		contains string
	}{
		{"empty body", "/v1/functions/hello", bytes.NewReader(nil), auth, 400, platform.ProblemInvalidModule, "empty"},
		{"not wasm", "/v1/functions/hello", strings.NewReader("#!/bin/sh\necho hi\n"), auth, 422, platform.ProblemInvalidModule, "not a wasm module"},
		{"wasm without the abi", "/v1/functions/hello", bytes.NewReader(emptyModule), auth, 422, platform.ProblemInvalidModule, "abi"},
		{"oversized", "/v1/functions/hello", bytes.NewReader(oversized), auth, 413, platform.ProblemTooLarge, "limit"},
		{"oversized chunked", "/v1/functions/hello", io.MultiReader(bytes.NewReader(oversized)), auth, 413, platform.ProblemTooLarge, "limit"},
		{"dot-dot name", "/v1/functions/..%2Fx", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidName, "invalid name"},
		{"dotted name", "/v1/functions/a.b", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidName, "invalid name"},
		{"long name", "/v1/functions/" + strings.Repeat("a", 200), bytes.NewReader(hello), auth, 400, platform.ProblemInvalidName, "at most 63"},
		{"unknown option", "/v1/functions/hello?colour=red", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidOption, `"colour"`},
		{"bad timeout", "/v1/functions/hello?timeout=soon", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidOption, "timeout"},
		{"bad config", "/v1/functions/hello?config=novalue", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidOption, "key=value"},
		{"bad route", "/v1/functions/hello?route=nope", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidSpec, "routes[0]"},
		{"unclosed route parameter", "/v1/functions/hello?route=/a/%7Bb", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidSpec, "not a route pattern"},
		{"route parameter named twice", "/v1/functions/hello?route=/ok&route=/a/%7Bb%7D/%7Bb%7D", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidSpec, "routes[1]"},
		{"route regexp that does not compile", "/v1/functions/hello?route=/a/%7Bb:%5B%7D", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidSpec, "not a route pattern"},
		{"route wildcard before the end", "/v1/functions/hello?route=/a/*/b", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidSpec, "not a route pattern"},
		{"route wildcard with a name", "/v1/functions/hello?route=/q/*x", bytes.NewReader(hello), auth, 400, platform.ProblemInvalidSpec, "not a route pattern"},
		{"wrong media type", "/v1/functions/hello", bytes.NewReader(hello), map[string]string{"Content-Type": "text/plain"}, 415, platform.ProblemUnsupportedMedia, "application/wasm"},
		{"wrong token", "/v1/functions/hello", bytes.NewReader(hello), map[string]string{"Content-Type": "application/wasm", "Authorization": "Bearer nope"}, 401, platform.ProblemUnauthorized, "invalid"},
		{"no token", "/v1/functions/hello", bytes.NewReader(hello), map[string]string{"Content-Type": "application/wasm", "Authorization": ""}, 401, platform.ProblemUnauthorized, "missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := a.do(http.MethodPut, c.path, c.body, c.header)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			p := decode[platform.Problem](t, b)
			if p.Type != c.typ || p.Status != c.status || p.Title == "" || !strings.Contains(strings.ToLower(p.Detail), strings.ToLower(c.contains)) {
				t.Errorf("problem = %+v, want type %s and detail containing %q", p, c.typ, c.contains)
			}
			if p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-Id") {
				t.Errorf("request id %q vs header %q", p.RequestID, resp.Header.Get("X-Request-Id"))
			}
			if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if after := a.state(); !reflect.DeepEqual(after, before) {
				t.Errorf("registry changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	// Reads need the token too.
	req, _ := http.NewRequest(http.MethodGet, a.base+"/v1/functions", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("GET without token: %d", resp.StatusCode)
	}
}

func TestAdminRequiresTokenOutsideDev(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := platform.NewAdmin(ctx, platform.AdminConfig{Env: "prod", Registry: e.reg, Host: e.host})
	if !errors.Is(err, platform.ErrInvalidConfig) || !strings.Contains(err.Error(), "Token") {
		t.Fatalf("prod without token: %v, want ErrInvalidConfig naming Token", err)
	}
	a, err := platform.NewAdmin(ctx, platform.AdminConfig{Env: "dev", Registry: e.reg, Host: e.host, Logger: testLogger()})
	if err != nil {
		t.Fatalf("dev without token: %v", err)
	}
	// Without a token (dev), /v1 is open.
	srv := httptestServer(t, a.Handler())
	resp, err := http.Get(srv + "/v1/functions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("dev without token: GET /v1/functions = %d", resp.StatusCode)
	}
}

func TestAdminHealthMetricsAndNodes(t *testing.T) {
	a := newAdminEnv(t, nil)
	// Before any deploy no micro service answers discovery at all (NATS
	// says "no responders"): that is an empty list, not an error.
	if resp, b := a.do(http.MethodGet, "/v1/nodes", nil, nil); resp.StatusCode != http.StatusOK || len(decode[platform.NodeList](t, b).Nodes) != 0 {
		t.Fatalf("nodes before any deploy: %d %s", resp.StatusCode, b)
	}
	if resp, b := a.deployRaw("/v1/functions/hello", guest(t, helloDir)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", resp.StatusCode, b)
	}
	a.startNode("n2")
	testutil.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		_, _, err := call(a.nc, "hello", request(protocol.PhaseRequestFilter, ""), time.Second)
		return err
	})
	waitServing(t, a.node, "hello", 1)

	// /healthz and /metrics need no token.
	resp, err := http.Get(a.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := decode[platform.Health](t, b)
	if resp.StatusCode != 200 || h.Status != platform.HealthOK || h.NodeID != "n1" || h.Env != "dev" || !h.NATS.Connected ||
		len(h.Functions) != 1 || h.Functions[0].Name != "hello" || h.Functions[0].State != platform.FunctionServing ||
		h.Functions[0].Version != 1 || h.Functions[0].SHA256 == "" || !slices.Equal(h.Functions[0].Phases, []string{"request_filter"}) {
		t.Errorf("healthz: %d %s", resp.StatusCode, b)
	}

	resp, err = http.Get(a.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`nylon_function_executions_total{function="hello",outcome="end",phase="request_filter"}`,
		`nylon_function_duration_seconds_bucket{function="hello",phase="request_filter"`,
		`nylon_function_loaded_version{function="hello"} 1`,
		`nylon_function_pool_instances{function="hello",state="idle"}`,
		`nylon_function_inflight{function="hello"} 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	resp, b = a.do(http.MethodGet, "/v1/nodes", nil, nil)
	nodes := decode[platform.NodeList](t, b)
	if resp.StatusCode != 200 || len(nodes.Nodes) != 2 || nodes.Nodes[0].ID != "n1" || nodes.Nodes[1].ID != "n2" {
		t.Fatalf("nodes: %d %s", resp.StatusCode, b)
	}
	for _, n := range nodes.Nodes {
		if len(n.Functions) != 1 || n.Functions[0].Name != "hello" || n.Functions[0].DeploymentVersion != 1 ||
			n.Functions[0].Endpoints[0].Subject != "nylon.dev.hello.request_filter" {
			t.Errorf("node %s: %+v", n.ID, n.Functions)
		}
	}

	// A drained node reports unavailable with 503.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.node.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(a.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("healthz of a drained node: %d, want 503", resp.StatusCode)
	}

	// Unknown paths and methods are problems too.
	resp, b = a.do(http.MethodGet, "/v1/nope", nil, nil)
	if p := decode[platform.Problem](t, b); resp.StatusCode != 404 || p.Type != platform.ProblemNotFound {
		t.Errorf("unknown path: %d %s", resp.StatusCode, b)
	}
	resp, b = a.do(http.MethodPatch, "/v1/functions/hello", nil, nil)
	if p := decode[platform.Problem](t, b); resp.StatusCode != 405 || p.Type != platform.ProblemMethodNotAllowed {
		t.Errorf("PATCH: %d %s", resp.StatusCode, b)
	}
}

// httptestServer serves h on a loopback port until the test ends.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAdminProfiling(t *testing.T) {
	e := newEnv(t)
	newHandler := func(profiling bool) string {
		a, err := platform.NewAdmin(context.Background(), platform.AdminConfig{
			Token: testToken, Registry: e.reg, Host: e.host, Logger: testLogger(), Profiling: profiling,
		})
		if err != nil {
			t.Fatal(err)
		}
		return httptestServer(t, a.Handler())
	}
	get := func(url, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	off := newHandler(false)
	if code, _ := get(off+"/debug/pprof/", testToken); code != http.StatusNotFound {
		t.Errorf("profiling off: GET /debug/pprof/ = %d, want 404", code)
	}

	on := newHandler(true)
	if code, _ := get(on+"/debug/pprof/goroutine?debug=1", ""); code != http.StatusUnauthorized {
		t.Errorf("profiling on, no token: %d, want 401", code)
	}
	if code, _ := get(on+"/debug/pprof/cmdline", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("profiling on, wrong token: %d, want 401", code)
	}
	code, body := get(on+"/debug/pprof/goroutine?debug=1", testToken)
	if code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine profile: %d %.200q", code, body)
	}
	code, body = get(on+"/debug/pprof/", testToken)
	if code != http.StatusOK || !strings.Contains(body, "heap") {
		t.Errorf("index: %d %.200q", code, body)
	}
	code, body = get(on+"/debug/pprof/heap", testToken)
	if code != http.StatusOK || len(body) == 0 {
		t.Errorf("heap profile: %d, %d bytes", code, len(body))
	}
	if code, _ := get(on+"/debug/vars", ""); code != http.StatusUnauthorized {
		t.Errorf("expvar without a token: %d, want 401", code)
	}
	code, body = get(on+"/debug/vars", testToken)
	if code != http.StatusOK || !strings.Contains(body, `"memstats"`) {
		t.Errorf("expvar: %d %.200q", code, body)
	}
}
