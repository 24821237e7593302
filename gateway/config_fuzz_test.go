package gateway_test

import (
	"errors"
	"os"
	"testing"

	"github.com/nylon-functions/nylon/gateway"
)

// ParseConfig takes an operator's file, but a file can be anything (a
// truncated write, the wrong file, a YAML alias bomb): whatever the bytes,
// it returns a Config or an error wrapping ErrInvalidConfig, and never
// panics.
func FuzzParseConfig(f *testing.F) {
	seed, err := os.ReadFile("testdata/seed.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(""))
	f.Add([]byte("routes:\n  - path: /a\n    function: hello\n"))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"))
	f.Add([]byte("plugins:\n  - name: p\n    per_phase:\n      request_filter: {timeout_ms: -1}\n---\nx: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := gateway.ParseConfig("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, gateway.ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			if cfg != nil {
				t.Fatalf("a config %+v with the error %v", cfg, err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("no config and no error")
		}
	})
}
