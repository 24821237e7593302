package main

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testFlagSet(env map[string]string) *flagSet {
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }}
	return newFlagSet(a, command{name: "test"}, "[flags]")
}

func TestFlagPrecedence(t *testing.T) {
	type vals struct {
		S string
		D time.Duration
		B bool
		L []string
		I int
	}
	define := func(f *flagSet, v *vals) {
		f.String(&v.S, "s", "x", "T_S", "def", "")
		f.Duration(&v.D, "d", "T_D", time.Second, "")
		f.Bool(&v.B, "b", "T_B", false, "")
		f.List(&v.L, "l", "x", "T_L", []string{"a"}, "")
		f.Int(&v.I, "i", "n", "T_I", 7, "")
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want vals
	}{
		{"defaults", nil, nil, vals{"def", time.Second, false, []string{"a"}, 7}},
		{"env over default", map[string]string{"T_S": "env", "T_D": "2m", "T_B": "true", "T_L": "x, y,,z", "T_I": "3"},
			nil, vals{"env", 2 * time.Minute, true, []string{"x", "y", "z"}, 3}},
		{"empty env is unset", map[string]string{"T_S": "", "T_I": ""}, nil, vals{"def", time.Second, false, []string{"a"}, 7}},
		{"flag over env", map[string]string{"T_S": "env", "T_D": "2m", "T_B": "true", "T_L": "x", "T_I": "3"},
			[]string{"--s", "flag", "--d", "3s", "--b=false", "--l", "p,q", "--i", "5"}, vals{"flag", 3 * time.Second, false, []string{"p", "q"}, 5}},
		{"flag over bad env", map[string]string{"T_D": "later"}, []string{"--d", "4s"}, vals{}},
		{"bad int env", map[string]string{"T_I": "three"}, nil, vals{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v vals
			f := testFlagSet(tt.env)
			define(f, &v)
			err := f.Parse(tt.args)
			if tt.name == "bad int env" {
				if !strings.Contains(fmt.Sprint(err), `T_I="three": not an integer`) {
					t.Fatalf("Parse = %v, want an error naming T_I", err)
				}
				return
			}
			if tt.name == "flag over bad env" {
				// A malformed variable is reported even when a flag overrides
				// it: the operator's environment is wrong either way.
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), `T_D="later"`) {
					t.Fatalf("Parse = %v, want a usage error naming T_D", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(v, tt.want) {
				t.Errorf("got %+v, want %+v", v, tt.want)
			}
		})
	}
}

func TestParseRoles(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"all", []string{"node", "gateway", "admin"}, false},
		{"admin,node", []string{"node", "admin"}, false},
		{"gateway, gateway", []string{"gateway"}, false},
		{"all,node", []string{"node", "gateway", "admin"}, false},
		{"", nil, true},
		{"node,ws", nil, true},
	}
	for _, tt := range tests {
		got, err := parseRoles(tt.in)
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseRoles(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
