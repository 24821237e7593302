package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

func TestSpecValidate(t *testing.T) {
	ok := spec("fn")
	ok.Config = map[string]string{"k": "v", "empty-value": ""}
	ok.Limits = registry.Limits{TimeoutMS: registry.MaxTimeoutMS, MemoryMB: 1, MaxWorkers: 8, MaxBodyBytes: 1 << 20}
	ok.QueueGroup = "workers.fn-1"
	ok.Routes = []string{"/", "/users/{id}", "/static/*", "/api/"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}

	tests := []struct {
		name  string
		field string // must appear in the message
		edit  func(*registry.Spec)
	}{
		{"path name", "name", func(s *registry.Spec) { s.Name = "../x" }},
		{"dotted name", "name", func(s *registry.Spec) { s.Name = "a.b" }},
		{"long name", "name", func(s *registry.Spec) { s.Name = strings.Repeat("a", 200) }},
		{"reserved name", "name", func(s *registry.Spec) { s.Name = "ws" }},
		{"empty name", "name", func(s *registry.Spec) { s.Name = "" }},
		{"upper name", "name", func(s *registry.Spec) { s.Name = "Auth" }},
		{"no phases", "phase_set", func(s *registry.Spec) { s.Phases = 0 }},
		{"unknown phase bit", "phase_set", func(s *registry.Spec) { s.Phases = 1 << 9 }},
		{"relative route", "routes[0]", func(s *registry.Spec) { s.Routes = []string{"api"} }},
		{"empty route", "routes[0]", func(s *registry.Spec) { s.Routes = []string{""} }},
		{"route with space", "routes[1]", func(s *registry.Spec) { s.Routes = []string{"/ok", "/a b"} }},
		{"route with query", "routes[0]", func(s *registry.Spec) { s.Routes = []string{"/a?b=c"} }},
		{"route with dot segment", "routes[0]", func(s *registry.Spec) { s.Routes = []string{"/a/../b"} }},
		{"route with empty segment", "routes[1]", func(s *registry.Spec) { s.Routes = []string{"/", "/a//b"} }},
		{"route with trailing dot", "routes[0]", func(s *registry.Spec) { s.Routes = []string{"/a/."} }},
		{"duplicate route", "routes[1]", func(s *registry.Spec) { s.Routes = []string{"/a", "/a"} }},
		{"same route, other parameter name", "routes[2]", func(s *registry.Spec) { s.Routes = []string{"/b", "/a/{x}", "/a/{y}"} }},
		{"too many routes", "routes", func(s *registry.Spec) { s.Routes = make([]string, registry.MaxRoutes+1) }},
		{"route of a module that cannot answer it", "routes", func(s *registry.Spec) {
			s.Phases = protocol.PhaseSetOf(protocol.PhaseResponseFilter, protocol.PhaseLogging)
			s.Routes = []string{"/hdr"}
		}},
		{"long route", "routes[0]", func(s *registry.Spec) { s.Routes = []string{"/" + strings.Repeat("r", registry.MaxRouteLen)} }},
		{"negative timeout", "limits.timeout_ms", func(s *registry.Spec) { s.Limits.TimeoutMS = -1 }},
		{"huge timeout", "limits.timeout_ms", func(s *registry.Spec) { s.Limits.TimeoutMS = registry.MaxTimeoutMS + 1 }},
		{"huge memory", "limits.memory_mb", func(s *registry.Spec) { s.Limits.MemoryMB = 1 << 20 }},
		{"negative workers", "limits.max_workers", func(s *registry.Spec) { s.Limits.MaxWorkers = -3 }},
		{"huge body", "limits.max_body_bytes", func(s *registry.Spec) { s.Limits.MaxBodyBytes = 1 << 40 }},
		{"empty config key", "config", func(s *registry.Spec) { s.Config = map[string]string{"": "v"} }},
		{"long config key", "config", func(s *registry.Spec) { s.Config = map[string]string{strings.Repeat("k", 200): "v"} }},
		{"big config", "config", func(s *registry.Spec) {
			s.Config = map[string]string{"k": strings.Repeat("v", registry.MaxConfigBytes)}
		}},
		{"bad queue group", "queue_group", func(s *registry.Spec) { s.QueueGroup = "a b" }},
		{"wildcard queue group", "queue_group", func(s *registry.Spec) { s.QueueGroup = "q.>" }},
		{"empty queue token", "queue_group", func(s *registry.Spec) { s.QueueGroup = "a..b" }},
		{"long description", "description", func(s *registry.Spec) { s.Description = strings.Repeat("d", registry.MaxDescriptionLen+1) }},
		{"bad utf-8 description", "description", func(s *registry.Spec) { s.Description = "\xff" }},
		{"long created_by", "created_by", func(s *registry.Spec) { s.CreatedBy = strings.Repeat("c", registry.MaxCreatedByLen+1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := spec("fn")
			tc.edit(&s)
			err := s.Validate()
			if !errors.Is(err, registry.ErrInvalidSpec) {
				t.Fatalf("Validate = %v, want ErrInvalidSpec", err)
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("error %q does not name field %q", err, tc.field)
			}
			if tc.field == "name" && !errors.Is(err, protocol.ErrInvalidName) {
				t.Fatalf("name error %q does not wrap protocol.ErrInvalidName", err)
			}
		})
	}

	// Every problem is reported, not just the first.
	s := spec("a.b")
	s.Routes = []string{"x"}
	s.Limits.MemoryMB = -1
	msg := s.Validate().Error()
	for _, field := range []string{"name:", "routes[0]:", "limits.memory_mb:"} {
		if !strings.Contains(msg, field) {
			t.Errorf("joined error %q lacks %q", msg, field)
		}
	}
}

func TestRecordSpecRoundTrip(t *testing.T) {
	s := spec("fn")
	s.Config = map[string]string{"a": "b"}
	s.QueueGroup = "pool"
	s.Description = "d"
	reg, _ := newRegistry(t)
	rec := deploy(t, reg, s, wasm("x"))
	back := rec.Spec()
	back.Config["a"] = "changed" // a copy, not the record's map
	if rec.Config["a"] != "b" || back.Name != s.Name || back.QueueGroup != "pool" || back.Phases != s.Phases {
		t.Fatalf("Spec() = %+v from %+v", back, rec)
	}
}
