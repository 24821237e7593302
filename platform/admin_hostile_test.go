package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

// newAdminOnly is newAdminEnv without a node: the admin API alone on an
// embedded NATS server, for tests of requests and answers.
func newAdminOnly(t *testing.T, adjust func(*platform.AdminConfig)) *adminEnv {
	t.Helper()
	e := newEnv(t)
	cfg := platform.AdminConfig{
		Addr: "127.0.0.1:0", Token: testToken, Registry: e.reg, Host: e.host, NATS: e.nc, Logger: testLogger(),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	a := startAdmin(t, cfg)
	return &adminEnv{env: e, admin: a, base: "http://" + a.Addr()}
}

// trickle sends a request whose body starts with head and then stalls
// until the test ends; the answer, or the error, arrives on the channel.
func (a *adminEnv) trickle(method, path, contentType string, head []byte) <-chan *http.Response {
	a.t.Helper()
	pr, pw := io.Pipe()
	a.t.Cleanup(func() { _ = pw.CloseWithError(io.ErrUnexpectedEOF) })
	req, err := http.NewRequest(method, a.base+path, pr)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", contentType)
	out := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- nil
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		out <- resp
	}()
	go func() { _, _ = pw.Write(head) }()
	return out
}

// A client that sends part of its body and then nothing (or a byte now and
// then) is cut off after BodyTimeout with 408, and its deploy gives its
// upload slot back; without the bound it held the slot, and with
// MaxUploadsInMemory such clients no deploy went through at all.
func TestAdminBoundsHowLongABodyMayTake(t *testing.T) {
	a := newAdminOnly(t, func(c *platform.AdminConfig) { c.BodyTimeout = 300 * time.Millisecond })
	hello := guest(t, helloDir)
	for _, c := range []struct {
		name, method, path, contentType string
		head                            []byte
	}{
		{"deploy", http.MethodPut, "/v1/functions/slow", "application/wasm", hello[:16]},
		{"multipart deploy", http.MethodPut, "/v1/functions/slow", "multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=\"module\"\r\n\r\n\x00asm")},
		{"rollback", http.MethodPost, "/v1/functions/slow/rollback", "application/json", []byte(`{"to":`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			var resp *http.Response
			select {
			case resp = <-a.trickle(c.method, c.path, c.contentType, c.head):
			case <-time.After(20 * time.Second):
				t.Fatal("no answer 20 s after the body stalled")
			}
			if resp == nil {
				t.Fatal("the request failed without an answer")
			}
			b, _ := io.ReadAll(resp.Body)
			p := decode[platform.Problem](t, b)
			if resp.StatusCode != http.StatusRequestTimeout || p.Type != platform.ProblemBodyTimeout || !strings.Contains(p.Detail, "300ms") {
				t.Fatalf("answer after %v: %d %s, want 408 body-timeout naming the bound", time.Since(start), resp.StatusCode, b)
			}
			testutil.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
				if n := a.admin.UploadsHeld(); n != 0 {
					return fmt.Errorf("%d upload slots still held", n)
				}
				return nil
			})
		})
	}
	// A deploy that sends its body in time is not cut off by the bound.
	if resp, b := a.deployRaw("/v1/functions/fast", hello); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", resp.StatusCode, b)
	}
}

// The bound covers reading the body only: a request that has read its
// body and then waits (here for the route lock, as behind another deploy)
// longer than BodyTimeout still completes; a bound on the request's context
// instead would fail it.
func TestAdminBodyTimeoutEndsWithTheBody(t *testing.T) {
	a := newAdminOnly(t, func(c *platform.AdminConfig) { c.BodyTimeout = 100 * time.Millisecond })
	a.deploy(registry.Spec{Name: "hello"}, helloDir)
	a.deploy(registry.Spec{Name: "hello", Description: "v2"}, helloDir)

	release := a.admin.HoldRoutes()
	done := make(chan int, 1)
	go func() {
		resp, _ := a.do(http.MethodPost, "/v1/functions/hello/rollback", strings.NewReader(`{"to":1}`), nil)
		done <- resp.StatusCode
	}()
	// Time for the body to be read and for its bound to pass; the answer
	// must not depend on it.
	time.Sleep(5 * 100 * time.Millisecond)
	release()
	select {
	case code := <-done:
		if code != http.StatusOK {
			t.Fatalf("rollback that waited past BodyTimeout after its body: %d, want 200", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
	}
}

// JSON documents are read whole: data after the first value is refused
// (it was ignored, so `{} {"routes": [...]}` deployed without routes), a
// spec part over its limit says so, and a value of the wrong type names
// the field.
func TestAdminRefusesMalformedJSON(t *testing.T) {
	a := newAdminOnly(t, nil)
	hello := guest(t, helloDir)
	a.deploy(registry.Spec{Name: "hello"}, helloDir)
	a.deploy(registry.Spec{Name: "hello", Description: "v2"}, helloDir)
	before := a.state()

	multipartDeploy := func(spec string) io.Reader {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		w, _ := mw.CreateFormField("spec")
		_, _ = w.Write([]byte(spec))
		w, _ = mw.CreateFormFile("module", "m.wasm")
		_, _ = w.Write(hello)
		_ = mw.Close()
		return &multipartBody{Reader: &buf, ct: mw.FormDataContentType()}
	}
	cases := []struct {
		name, method, path string
		body               io.Reader
		status             int
		typ, option, want  string
	}{
		{"spec with a second value", http.MethodPut, "/v1/functions/hello", multipartDeploy(`{} {"routes":["/x"]}`), 400, platform.ProblemInvalidOption, "", "unexpected data after the JSON value"},
		{"spec with trailing garbage", http.MethodPut, "/v1/functions/hello", multipartDeploy(`{"routes":["/x"]}xx`), 400, platform.ProblemInvalidOption, "", "unexpected data"},
		{"spec over the limit", http.MethodPut, "/v1/functions/hello", multipartDeploy(`{"description":"` + strings.Repeat("x", 1<<20) + `"}`), 413, platform.ProblemTooLarge, "spec", "over the limit of 1048576 bytes"},
		{"config not a map", http.MethodPut, "/v1/functions/hello", multipartDeploy(`{"config":["a=b"]}`), 400, platform.ProblemInvalidOption, "config", "cannot unmarshal array"},
		{"rollback body with a second value", http.MethodPost, "/v1/functions/hello/rollback", strings.NewReader(`{"to":1} {"to":2}`), 400, platform.ProblemBadRequest, "", "unexpected data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			header := map[string]string{"Content-Type": "application/json"}
			if mb, ok := c.body.(*multipartBody); ok {
				header["Content-Type"] = mb.ct
			}
			resp, b := a.do(c.method, c.path, c.body, header)
			p := decode[platform.Problem](t, b)
			if resp.StatusCode != c.status || p.Type != c.typ || p.Option != c.option || !strings.Contains(p.Detail, c.want) {
				t.Fatalf("%d %s\nwant %d %s option %q detail containing %q", resp.StatusCode, b, c.status, c.typ, c.option, c.want)
			}
			if after := a.state(); !reflect.DeepEqual(after, before) {
				t.Errorf("registry changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

type multipartBody struct {
	io.Reader
	ct string
}

// A 405 lists the methods the resource has (RFC 9110 requires Allow), and
// a 401 for another auth scheme says the scheme is the problem.
func TestAdminAllowAndAuthSchemes(t *testing.T) {
	a := newAdminOnly(t, nil)
	for path, c := range map[string]struct{ method, allow string }{
		"/v1/functions/hello":          {http.MethodPatch, "GET, PUT, DELETE"},
		"/v1/functions":                {http.MethodPost, "GET"},
		"/v1/functions/hello/rollback": {http.MethodGet, "POST"},
		"/healthz":                     {http.MethodPost, "GET"},
	} {
		resp, b := a.do(c.method, path, nil, nil)
		p := decode[platform.Problem](t, b)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow || !strings.Contains(p.Detail, "allowed: "+c.allow) {
			t.Errorf("%s %s: %d Allow %q %s; want 405 with Allow %q", c.method, path, resp.StatusCode, resp.Header.Get("Allow"), b, c.allow)
		}
	}

	for auth, want := range map[string]string{
		"Basic Zm9vOmJhcg==": `scheme "Basic" is not accepted`,
		"Bearer":             "missing bearer token",
		"":                   "missing bearer token",
		"Bearer wrong":       "invalid bearer token",
	} {
		resp, b := a.do(http.MethodGet, "/v1/functions", nil, map[string]string{"Authorization": auth})
		p := decode[platform.Problem](t, b)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Detail, want) {
			t.Errorf("Authorization %q: %d %s, want 401 saying %q", auth, resp.StatusCode, b, want)
		}
	}
	if resp, b := a.do(http.MethodGet, "/v1/functions", nil, map[string]string{"Authorization": "bearer " + testToken}); resp.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: %d %s", resp.StatusCode, b)
	}
}

// A rollback the registry refuses answers with a detail a user can act on:
// past the retention window (404) it lists the versions that are retained,
// a version whose module bytes are gone (404) or are not the record's
// (409) says so; the active version stays.
func TestAdminRollbackRefusalsSayWhy(t *testing.T) {
	a := newAdminOnly(t, nil)
	ctx := t.Context()
	hello := guest(t, helloDir)
	var recs []registry.Record
	for i := 1; i <= registry.DefaultRetain+2; i++ {
		// Straight to the registry: the same module, validated elsewhere.
		rec, err := a.reg.Deploy(ctx, registry.Spec{Name: "hello", Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter),
			Description: fmt.Sprint("v", i)}, append(bytes.Clone(hello), make([]byte, i)...))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	js := testutil.JetStream(t, a.nc)
	obs, err := js.ObjectStore(ctx, registry.ModulesBucket("dev"))
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(ctx, recs[10].SHA256); err != nil { // version 11's
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, recs[9].SHA256, []byte("other bytes")); err != nil { // version 10's
		t.Fatal(err)
	}
	for to, want := range map[string]struct {
		status int
		typ    string
		detail string
	}{
		"2":  {http.StatusNotFound, platform.ProblemNotFound, "retained versions: 12, 11, 10, 9, 8, 7, 6, 5, 4, 3"},
		"11": {http.StatusNotFound, platform.ProblemNotFound, "its bytes are no longer stored"},
		"10": {http.StatusConflict, platform.ProblemCorruptModule, "the stored object has 11 bytes"},
	} {
		resp, b := a.do(http.MethodPost, "/v1/functions/hello/rollback?to="+to, nil, nil)
		p := decode[platform.Problem](t, b)
		if resp.StatusCode != want.status || p.Type != want.typ || !strings.Contains(p.Detail, want.detail) {
			t.Errorf("rollback to %s: %d %s, want %d %s saying %q", to, resp.StatusCode, b, want.status, want.typ, want.detail)
		}
	}
	resp, b := a.do(http.MethodGet, "/v1/functions/hello", nil, nil)
	if rec := decode[registry.Record](t, b); resp.StatusCode != http.StatusOK || rec.Version != 12 {
		t.Fatalf("active after refused rollbacks: %d %s, want version 12", resp.StatusCode, b)
	}
}

// A deploy whose client leaves while its module is being validated is not
// an invalid module: the validation ended because the request did. It was
// answered (and logged, and counted by anyone alerting on 4xx) as 422
// invalid-module, which is what `make run` showed for the example being
// deployed when Ctrl-C came.
func TestAdminDeployCancelledDuringValidationIsNot422(t *testing.T) {
	// _initialize spins until the validation's context ends.
	initLoop, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "wasmhost", "testdata", "initloop.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	a := newAdminOnly(t, func(c *platform.AdminConfig) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.base+"/v1/functions/left", bytes.NewReader(initLoop))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/wasm")
	time.AfterFunc(150*time.Millisecond, cancel)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the deploy answered %d before the client left; validation was expected to take longer", resp.StatusCode)
	}
	var status int
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		for line := range strings.Lines(logs.String()) {
			var rec struct {
				Msg, Path string
				Status    int
			}
			if err := json.Unmarshal([]byte(line), &rec); err == nil && rec.Msg == "admin: request" && rec.Path == "/v1/functions/left" {
				status = rec.Status
				return nil
			}
		}
		return errors.New("the deploy's request line is not logged yet")
	})
	if status != http.StatusServiceUnavailable {
		t.Fatalf("a deploy cancelled during validation was answered %v, want 503 (not 422: the module is fine)", status)
	}
}
