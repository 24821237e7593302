package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
)

// invoke matches no route, so route parameters come from --param: hello
// reads its name from the route parameter "name" when the query has none.
func TestCLIInvokeParams(t *testing.T) {
	e := startPlatform(t)
	hello := testutil.WasmPath(t, "functions/examples/hello")
	e.mustCLI(t, "deploy", "hello", hello, "--quiet", "--route", "/hello/{name}")

	testutil.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		code, out, errOut := e.invoke(t, "hello", "--path", "/hello/ana", "--param", "name=ana", "--param", "other=x=y")
		if code != 0 || !strings.Contains(out, `body: {"message":"hello, ana"}`) {
			return fmt.Errorf("invoke --param name=ana: exit %d, want hello, ana\n%s%s", code, out, errOut)
		}
		return nil
	})
	// Without --param the path alone fills nothing.
	if code, out, errOut := e.invoke(t, "hello", "--path", "/hello/ana"); code != 0 || !strings.Contains(out, `"hello, world"`) {
		t.Errorf("invoke without --param: exit %d, want hello, world\n%s%s", code, out, errOut)
	}

	for _, bad := range [][]string{{"--param", "name"}, {"--param", "=ana"}, {"--param", "name=a", "--param", "name=b"}} {
		code, _, errOut := e.invoke(t, append([]string{"hello"}, bad...)...)
		if code != 2 || !strings.Contains(errOut, "--param") {
			t.Errorf("invoke %q: exit %d, stderr %q; want a usage error naming --param", bad, code, errOut)
		}
	}
}
