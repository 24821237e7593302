package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
)

// externalServeArgs are the arguments of a serve process on the NATS server
// at natsURL, with roles.
func externalServeArgs(t *testing.T, natsURL, roles string, extra ...string) []string {
	return append([]string{"serve", "--nats", natsURL, "--role", roles, "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, extra...)
}

// metricValue returns the sum of the samples of family (a counter, a gauge,
// or a histogram's _count) whose labels include every label="value" pair
// of labels, from the Prometheus text exposition on base/metrics, and
// whether any matched.
func metricValue(t *testing.T, base, family string, labels ...string) (float64, bool) {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET %s/metrics = %d", base, code)
	}
	line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(family) + `\{([^}]*)\} (\S+)$`)
	sum, found := 0.0, false
	for _, m := range line.FindAllStringSubmatch(body, -1) {
		ok := true
		for _, l := range labels {
			if !strings.Contains(","+m[1]+",", ","+l+",") {
				ok = false
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("%s: sample %q: %v", family, m[2], err)
		}
		sum, found = sum+v, true
	}
	return sum, found
}

// getProcessHealth decodes serve's /healthz.
func getProcessHealth(t *testing.T, base string) (int, processHealth) {
	t.Helper()
	code, body := httpGet(t, base+"/healthz")
	var h processHealth
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("decode /healthz: %v\n%s", err, body)
	}
	return code, h
}

// TestServeHealthAndMetricsInEveryRole runs the roles in processes of their
// own, as when they are scaled out: an admin-only process with the embedded
// NATS server, a node and a gateway. Each listens on --admin with /healthz
// and /metrics for what it runs; only the admin process serves /v1.
func TestServeHealthAndMetricsInEveryRole(t *testing.T) {
	admin := startCmd(t, serveArgs(t, "--role", "admin")...)
	admin.waitLine(t, readyLine)
	adminURL, natsURL := admin.waitLine(t, adminLine), admin.waitLine(t, natsLine)

	gw := startCmd(t, externalServeArgs(t, natsURL, "gateway")...)
	gw.waitLine(t, readyLine)
	gwAdminURL, gwURL := gw.waitLine(t, adminLine), gw.waitLine(t, gatewayLine)

	// hello is deployed before any node runs. Its route answers as soon as
	// the gateway has it: the first request waits for the node that starts
	// next, and gets hello's answer, not 503 (a new function's first
	// requests wait for its first node).
	deployModule(t, adminURL, "hello", testutil.Wasm(t, "functions/examples/hello"), url.Values{"route": {"/hello"}})
	type answer struct {
		code int
		body string
	}
	first := make(chan answer, 1)
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(gwURL + "/hello?name=you")
			if err != nil {
				first <- answer{body: err.Error()}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || time.Now().After(deadline) {
				first <- answer{resp.StatusCode, string(body)}
				return
			}
			time.Sleep(10 * time.Millisecond) // the route is on its way
		}
	}()
	node := startCmd(t, externalServeArgs(t, natsURL, "node")...)
	node.waitLine(t, readyLine)
	nodeURL := node.waitLine(t, adminLine)
	if a := <-first; a.code != http.StatusOK || a.body != `{"message":"hello, you"}` {
		t.Fatalf("first GET /hello after the deploy = %d %s, want 200 once the node had loaded hello", a.code, a.body)
	}

	// The node's function metrics and the gateway's caller metrics are
	// scraped from the processes that count them.
	if v, ok := metricValue(t, nodeURL, "nylon_function_executions_total", `function="hello"`); !ok || v < 1 {
		t.Errorf("node /metrics: nylon_function_executions_total{function=hello} = %v (found %v), want >= 1", v, ok)
	}
	if v, ok := metricValue(t, gwAdminURL, "plugins_messaging_duration_seconds_count", `plugin="hello"`); !ok || v < 1 {
		t.Errorf("gateway /metrics: plugins_messaging_duration_seconds_count{plugin=hello} = %v (found %v), want >= 1", v, ok)
	}
	if _, ok := metricValue(t, gwAdminURL, "nylon_function_executions_total"); ok {
		t.Error("gateway /metrics has the node's nylon_function_executions_total")
	}

	code, h := getProcessHealth(t, nodeURL)
	if code != http.StatusOK || h.Status != platform.HealthOK || !h.NATS.Connected || h.State != "serving" ||
		!slices.Equal(h.Roles, []string{roleNode}) || h.Gateway != nil {
		t.Errorf("node /healthz = %d %+v", code, h)
	}
	if len(h.Functions) != 1 || h.Functions[0].Name != "hello" || h.Functions[0].State != platform.FunctionServing {
		t.Errorf("node /healthz functions = %+v", h.Functions)
	}
	code, h = getProcessHealth(t, gwAdminURL)
	if code != http.StatusOK || h.Status != platform.HealthOK || !h.NATS.Connected || !slices.Equal(h.Roles, []string{roleGateway}) ||
		h.Gateway == nil || h.Gateway.State != stateServing || "http://"+h.Gateway.Addr != gwURL {
		t.Errorf("gateway /healthz = %d %+v (gateway %+v)", code, h, h.Gateway)
	}

	// The admin API is the admin process's alone.
	for _, base := range []string{nodeURL, gwAdminURL} {
		resp, err := http.Get(base + "/v1/functions")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s/v1/functions = %d %s, want 404 problem+json", base, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		resp, err = http.Post(base+"/healthz", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s/healthz = %d, want 405", base, resp.StatusCode)
		}
	}
	if code, body := httpGet(t, adminURL+"/v1/functions"); code != http.StatusOK || !strings.Contains(body, `"hello"`) {
		t.Errorf("admin /v1/functions = %d %s", code, body)
	}
	code, h = getProcessHealth(t, adminURL)
	if code != http.StatusOK || h.Status != platform.HealthOK || !slices.Equal(h.Roles, []string{roleAdmin}) || h.Gateway != nil || h.NodeID != "" {
		t.Errorf("admin /healthz = %d %+v", code, h)
	}

	for _, b := range []*background{gw, node, admin} {
		if code := b.stop(t); code != 0 {
			t.Errorf("exit %d, stderr:\n%s", code, b.stderr.String())
		}
	}
}

// TestServeNATSURLsVariableIsNATSFlag: with a gateway config, NYLON_NATS_URLS
// is serve's --nats and nothing else. A messaging config without servers
// calls over serve's connection, with serve's credentials (here the token of
// NYLON_NATS_TOKEN); one with servers of its own dials them, untouched by
// the variable.
func TestServeNATSURLsVariableIsNATSFlag(t *testing.T) {
	opts := testutil.NATSOptions(t)
	opts.Authorization = "s3cret"
	secured := testutil.RunNATSWith(t, opts)
	other := testutil.RunNATS(t)

	yaml := `messaging:
  - name: shared
  - name: other
    servers: ["` + other.ClientURL() + `"]
plugins:
  - {name: p, messaging: shared, function: hello, per_phase: {request_filter: {on_error: continue}}}
  - {name: q, messaging: other, function: hello, per_phase: {request_filter: {on_error: continue}}}
`
	cfgFile := writeGatewayConfig(t, yaml)
	t.Setenv("NYLON_NATS_URLS", secured.ClientURL())
	t.Setenv("NYLON_NATS_TOKEN", "s3cret")
	b := startCmd(t, "serve", "--role", "gateway", "--gateway-config", cfgFile, "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	b.waitLine(t, readyLine)
	if n := secured.NumClients(); n != 1 {
		t.Errorf("%d clients on the token-protected server, want serve's connection alone", n)
	}
	if n := other.NumClients(); n != 1 {
		t.Errorf("%d clients on the other server, want the config's own connection", n)
	}
	_, h := getProcessHealth(t, b.waitLine(t, adminLine))
	if h.Gateway == nil || len(h.Gateway.Messaging) != 1 || h.Gateway.Messaging[0].Name != "other" || !h.Gateway.Messaging[0].Connected {
		t.Errorf("/healthz gateway = %+v, want the own connection of config other", h.Gateway)
	}
	if code := b.stop(t); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, b.stderr.String())
	}
}
