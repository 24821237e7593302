package gateway_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/protocol"
)

// answerOn is a bare stand-in node: it answers every request on subject
// with End and the body text, whatever prefix the subject has.
func (e *env) answerOn(subject, text string) {
	e.t.Helper()
	_, err := e.nc.Subscribe(subject, func(m *nats.Msg) {
		var req protocol.PluginRequest
		if err := protocol.DecodeRequest(m.Data, &req); err != nil {
			e.t.Errorf("node %s: %v", subject, err)
			return
		}
		resp := protocol.PluginResponse{Version: protocol.Version, RequestID: req.RequestID, Action: protocol.ActionEnd,
			Data: protocol.AppendOps(nil, []protocol.Op{body(text)})}
		_ = m.Respond(resp.AppendMsgpack(nil))
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
}

// WithSubjectPrefix is the prefix of the implicit messaging config and of
// configs without a subject_prefix, hence of function routes and of the
// dead-letter stream; a config's own subject_prefix keeps it.
func TestWithSubjectPrefix(t *testing.T) {
	e := newEnv(t)
	e.answerOn("acme.fn.hi.request_filter", "acme")
	e.answerOn("own.pfx.hi.request_filter", "own")
	e.answerOn(protocol.PhaseSubject(prefix, "hi", protocol.PhaseRequestFilter), "default")
	up := e.upstream()
	js := testutil.JetStream(t, e.nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	streamSubjects := func(name string) []string {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		return s.CachedInfo().Config.Subjects
	}

	// No YAML: the implicit config.
	gw, srv := e.gateway("", gateway.WithEnv("dev"), gateway.WithSubjectPrefix("acme.fn"))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/hi", Function: "hi"}}); err != nil {
		t.Fatal(err)
	}
	if r := get(t, srv.URL+"/hi"); r.Status != 200 || r.Body != "acme" {
		t.Fatalf("GET /hi = %d %q, want the function on acme.fn", r.Status, r.Body)
	}
	if got := streamSubjects("NYLON_DLQ_ACME_FN"); !slices.Equal(got, []string{"acme.fn.dlq.>"}) {
		t.Errorf("dead-letter stream subjects %v", got)
	}

	// A config without subject_prefix takes the option's; one with its own
	// keeps it.
	gw, srv = e.gateway(`messaging:
  - name: plain
  - name: own
    subject_prefix: own.pfx
plugins:
  - {name: p, messaging: own, function: hi, per_phase: {request_filter: {on_error: end}}}
routes:
  - {path: /p, upstream: "`+up.URL+`", plugins: [p]}
`, gateway.WithRegisterer(prometheus.NewRegistry()), gateway.WithSubjectPrefix("acme.fn"))
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/hi", Function: "hi"}}); err != nil {
		t.Fatal(err)
	}
	if r := get(t, srv.URL+"/hi"); r.Status != 200 || r.Body != "acme" {
		t.Errorf("GET /hi = %d %q, want the function on acme.fn", r.Status, r.Body)
	}
	if r := get(t, srv.URL+"/p"); r.Status != 200 || r.Body != "own" {
		t.Errorf("GET /p = %d %q, want the plugin on its own prefix own.pfx", r.Status, r.Body)
	}
	if got := streamSubjects("NYLON_DLQ_OWN_PFX"); !slices.Equal(got, []string{"own.pfx.dlq.>"}) {
		t.Errorf("dead-letter stream subjects %v", got)
	}

	for _, bad := range []string{"", "acme.*", "acme..fn", "acme fn"} {
		_, err := gateway.New(gateway.Config{}, e.nc, gateway.WithSubjectPrefix(bad))
		if err == nil || !strings.Contains(err.Error(), "subject prefix") {
			t.Errorf("WithSubjectPrefix(%q): New = %v, want a subject prefix error", bad, err)
		}
	}
}
