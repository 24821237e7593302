package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// --access-log and NYLON_ACCESS_LOG fill serveConfig.AccessLog; off by
// default.
func TestServeAccessLogFlag(t *testing.T) {
	if parseServeFlags(t, nil).AccessLog {
		t.Error("default: on, want off")
	}
	env := map[string]string{"NYLON_ACCESS_LOG": "true"}
	if !parseServeFlags(t, env).AccessLog {
		t.Error("NYLON_ACCESS_LOG=true: off")
	}
	if parseServeFlags(t, env, "--access-log=false").AccessLog {
		t.Error("--access-log=false over NYLON_ACCESS_LOG=true: on")
	}
	if !parseServeFlags(t, nil, "--access-log").AccessLog {
		t.Error("--access-log: off")
	}
}

// With --access-log, serve's log (here --log-format json, on stderr) has
// one "gateway: access" line per gateway request, a function's and a 404
// alike.
func TestServeAccessLog(t *testing.T) {
	b := startCmd(t, serveArgs(t, "--access-log", "--log-format", "json")...)
	b.waitLine(t, readyLine)
	admin, gw := b.waitLine(t, adminLine), b.waitLine(t, gatewayLine)
	defer b.stop(t)
	deployModule(t, admin, "sdk", testutil.Wasm(t, "functions/examplestest/testdata/sdkguest"), url.Values{"route": {"/client-ip"}})

	ua := http.Header{"User-Agent": {"serve-access-test"}}
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if code, _, body := get(t, gw+"/client-ip?token=s3cret", ua); code != http.StatusOK {
			return fmt.Errorf("GET /client-ip: %d %s", code, body)
		}
		return nil
	})
	if code, _, _ := get(t, gw+"/nowhere", ua); code != http.StatusNotFound {
		t.Fatalf("GET /nowhere: %d, want 404", code)
	}

	// accessLine finds the access line of a request to path with status.
	accessLine := func(path string, status int) (map[string]any, error) {
		for line := range bytes.Lines(b.stderr.Bytes()) {
			var m map[string]any
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if m["msg"] == "gateway: access" && m["path"] == path && m["status"] == float64(status) {
				return m, nil
			}
		}
		return nil, errors.New("no access line for " + path)
	}
	var ok, missing map[string]any
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() (err error) {
		if ok, err = accessLine("/client-ip", http.StatusOK); err == nil {
			missing, err = accessLine("/nowhere", http.StatusNotFound)
		}
		if err != nil {
			return fmt.Errorf("%w in stderr:\n%s", err, b.stderr.String())
		}
		return nil
	})
	if ok["level"] != "INFO" || ok["route"] != "/client-ip" || ok["function"] != "sdk" || ok["method"] != "GET" ||
		ok["client_ip"] != "127.0.0.1" || ok["user_agent"] != "serve-access-test" || ok["bytes"] != float64(len("127.0.0.1")) {
		t.Errorf("the function's access line: %v", ok)
	}
	if id, _ := ok["request_id"].(string); len(id) != 36 {
		t.Errorf("the function's access line: request_id %v, want the invocation's", ok["request_id"])
	}
	if missing["route"] != "" || missing["request_id"] == nil {
		t.Errorf("the 404's access line: %v", missing)
	}
	if bytes.Contains(b.stderr.Bytes(), []byte("s3cret")) {
		t.Errorf("the query string reached the log:\n%s", b.stderr.String())
	}
}
