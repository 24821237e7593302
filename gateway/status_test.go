package gateway_test

import (
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/gateway"
	"github.com/nylon-functions/nylon/protocol"
)

// A status op the edge cannot send (an interim 1xx, or above 599) is
// ignored, and logged at WARN once per reply with the plugin and the status,
// rather than turning into a silent 200.
func TestRefusedStatusIsLogged(t *testing.T) {
	e := newEnv(t)
	up := e.upstream()
	e.serve("odd", protocol.PhaseRequestFilter, func(c *call) answer {
		return end(status(999), status(101), body("odd"))
	})
	e.serve("filter", protocol.PhaseResponseFilter, func(c *call) answer { return next(status(100)) })
	gw, srv := e.gateway(yamlMessaging("") + `
plugins:
  - {name: filter, messaging: nats, per_phase: {response_filter: {}}}
routes:
  - {path: /up, upstream: "` + up.URL + `", plugins: [filter]}
`)
	if err := gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/odd", Function: "odd"}}); err != nil {
		t.Fatal(err)
	}

	r := get(t, srv.URL+"/odd")
	wantStatus(t, r, 200)
	if r.Body != "odd" {
		t.Fatalf("body %q", r.Body)
	}
	wantStatus(t, get(t, srv.URL+"/up"), 200)

	var refused []string
	for line := range strings.Lines(e.log.String()) {
		if strings.Contains(line, "status op refused") {
			refused = append(refused, line)
		}
	}
	if len(refused) != 2 {
		t.Fatalf("%d refusals logged, want one per reply (2):\n%s", len(refused), strings.Join(refused, ""))
	}
	for i, want := range []string{"plugin=odd phase=request_filter status=999 refused=2", "plugin=filter phase=response_filter status=100 refused=1"} {
		if !strings.Contains(refused[i], "level=WARN") || !strings.Contains(refused[i], want) {
			t.Errorf("refusal %q, want a WARN with %q", refused[i], want)
		}
	}
}
