package main

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// A function that is deleted leaves no series behind on /metrics: not the
// node's (nylon_function_*) and not the gateway's (plugins_messaging_* by
// the function's name, nylon_http_* by its route). A soak of serve under
// deploys and deletes of short-lived functions found the gateway's kept
// for ever, some 160 per function, growing the heap and every scrape.
func TestDeletedFunctionLeavesNoSeries(t *testing.T) {
	b := startCmd(t, serveArgs(t)...)
	b.waitLine(t, readyLine)
	admin, gw := b.waitLine(t, adminLine), b.waitLine(t, gatewayLine)
	hello := testutil.Wasm(t, "functions/examples/hello")

	// keep stays: its series must survive the other's delete.
	deployModule(t, admin, "keep", hello, url.Values{"route": {"/keep"}})
	deployModule(t, admin, "gone", hello, url.Values{"route": {"/gone", "/gone/{name}"}})
	for _, path := range []string{"/keep", "/gone", "/gone/ana"} {
		testutil.Eventually(t, 60*time.Second, 20*time.Millisecond, func() error {
			if code, _ := httpGet(t, gw+path); code != http.StatusOK {
				return fmt.Errorf("GET %s = %d", path, code)
			}
			return nil
		})
	}
	gone := regexp.MustCompile(`(?m)^[a-z_]+\{[^}]*("gone"|"/gone"|"/gone/\{name\}")[^}]*\}`)
	keep := regexp.MustCompile(`(?m)^plugins_messaging_duration_seconds_count\{phase="request_filter",plugin="keep"\} [1-9]`)
	_, body := httpGet(t, admin+"/metrics")
	if !gone.MatchString(body) || !keep.MatchString(body) {
		t.Fatalf("before the delete, /metrics has no series of gone or keep:\n%s", body)
	}

	req, err := http.NewRequest(http.MethodDelete, admin+"/v1/functions/gone", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE gone: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("DELETE gone = %d", resp.StatusCode)
	}
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if code, _ := httpGet(t, gw+"/gone"); code != http.StatusNotFound {
			return fmt.Errorf("GET /gone after the delete = %d, want 404", code)
		}
		_, body := httpGet(t, admin+"/metrics")
		if m := gone.FindAllString(body, -1); len(m) > 0 {
			return fmt.Errorf("%d series of the deleted function left on /metrics, e.g.\n%s", len(m), strings.Join(m[:min(len(m), 5)], "\n"))
		}
		return nil
	})
	if _, body := httpGet(t, admin+"/metrics"); !keep.MatchString(body) {
		t.Errorf("the series of keep went with gone's:\n%s", body)
	}
}
