package registry_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nylon-functions/nylon/protocol"
	"github.com/nylon-functions/nylon/registry"
)

func TestDeployGetList(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := t.Context()

	s := spec("auth")
	s.Phases = protocol.PhaseSetOf(protocol.PhaseRequestFilter, protocol.PhaseEvent)
	s.Config = map[string]string{"realm": "api"}
	s.Limits = registry.Limits{TimeoutMS: 250, MemoryMB: 32, MaxWorkers: 4, MaxBodyBytes: 1 << 20}
	s.Description = "checks tokens"
	s.CreatedBy = "test"
	mod := wasm("auth-1")
	before := time.Now().UTC().Add(-time.Second)

	rec := deploy(t, reg, s, mod)
	sum := sha256.Sum256(mod)
	if rec.Name != "auth" || rec.Version != 1 || !rec.Active {
		t.Fatalf("deploy returned %+v, want auth v1 active", rec)
	}
	if rec.SHA256 != hex.EncodeToString(sum[:]) || rec.Size != int64(len(mod)) {
		t.Fatalf("sha256/size = %s/%d, want %x/%d", rec.SHA256, rec.Size, sum, len(mod))
	}
	if !slices.Equal(rec.Phases, []string{"request_filter", "events"}) || !rec.WS || rec.PhaseSet != s.Phases {
		t.Fatalf("phases = %v ws=%v set=%d", rec.Phases, rec.WS, rec.PhaseSet)
	}
	if rec.QueueGroup != "auth" {
		t.Fatalf("queue group = %q, want the function name", rec.QueueGroup)
	}
	if rec.CreatedAt.Before(before) || rec.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at = %v", rec.CreatedAt)
	}

	got, err := reg.Get(ctx, "auth")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Version != 1 || !got.Active || got.Config["realm"] != "api" || got.Limits != s.Limits ||
		got.Description != s.Description || got.CreatedBy != "test" || !got.CreatedAt.Equal(rec.CreatedAt) {
		t.Fatalf("get = %+v, want %+v", got, rec)
	}

	// The stored JSON shape is a contract with the admin API and other languages.
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "version", "sha256", "size", "phases", "phase_set", "ws", "routes", "config", "limits", "queue_group", "created_at", "description", "created_by", "active"} {
		if _, ok := m[k]; !ok {
			t.Errorf("record JSON lacks %q: %s", k, b)
		}
	}
	if _, err := time.Parse(time.RFC3339, m["created_at"].(string)); err != nil {
		t.Errorf("created_at %v is not RFC3339: %v", m["created_at"], err)
	}
	if lim := m["limits"].(map[string]any); lim["timeout_ms"] != float64(250) || lim["max_body_bytes"] != float64(1<<20) {
		t.Errorf("limits JSON = %v", lim)
	}

	deploy(t, reg, spec("zeta"), wasm("zeta"))
	deploy(t, reg, spec("beta"), wasm("beta"))
	v2 := deploy(t, reg, s, wasm("auth-2"))
	if v2.Version != 2 || !v2.Active {
		t.Fatalf("redeploy = v%d active=%v, want v2 active", v2.Version, v2.Active)
	}
	list, err := reg.List(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var names []string
	for _, r := range list {
		names = append(names, r.Name)
		if !r.Active {
			t.Errorf("list: %s not marked active", r.Name)
		}
	}
	if !slices.Equal(names, []string{"auth", "beta", "zeta"}) || list[0].Version != 2 {
		t.Fatalf("list = %v (auth v%d), want [auth beta zeta] with auth v2", names, list[0].Version)
	}

	old, err := reg.GetVersion(ctx, "auth", 1)
	if err != nil || old.Version != 1 || old.Active || old.SHA256 != rec.SHA256 {
		t.Fatalf("get version 1 = %+v, %v", old, err)
	}
	cur, err := reg.GetVersion(ctx, "auth", 2)
	if err != nil || !cur.Active {
		t.Fatalf("get version 2 = %+v, %v; want active", cur, err)
	}
	vs, err := reg.Versions(ctx, "auth")
	if err != nil {
		t.Fatalf("versions: %v", err)
	}
	if !slices.Equal(versionNumbers(vs), []uint64{2, 1}) || !vs[0].Active || vs[1].Active {
		t.Fatalf("versions = %v active=[%v %v], want [2 1] with 2 active", versionNumbers(vs), vs[0].Active, vs[1].Active)
	}

	_, err = reg.Get(ctx, "missing")
	requireErrorIs(t, err, registry.ErrNotFound, jetstream.ErrKeyNotFound)
	// What a user of `nylon get` or the admin API reads: what is missing,
	// not how the registry stores it.
	if err.Error() != "function[missing]: not found" {
		t.Errorf("Get(missing) = %q, want %q", err, "function[missing]: not found")
	}
	_, err = reg.GetVersion(ctx, "auth", 7)
	requireErrorIs(t, err, registry.ErrNotFound, jetstream.ErrKeyNotFound)
	if err.Error() != "function[auth] version 7: not found (not retained)" {
		t.Errorf("GetVersion(auth, 7) = %q", err)
	}
	_, err = reg.Versions(ctx, "missing")
	requireErrorIs(t, err, registry.ErrNotFound)
	_, err = reg.Get(ctx, "a.b")
	requireErrorIs(t, err, protocol.ErrInvalidName)

	bad := spec("../x")
	_, err = reg.Deploy(ctx, bad, mod)
	requireErrorIs(t, err, registry.ErrInvalidSpec, protocol.ErrInvalidName)
	_, err = reg.Deploy(ctx, spec("empty"), nil)
	requireErrorIs(t, err, registry.ErrInvalidSpec)
	if _, err := reg.Get(ctx, "empty"); err == nil {
		t.Fatalf("a refused deploy left a function behind")
	}
}

func TestLargeModuleRoundTrips(t *testing.T) {
	reg, _ := newRegistry(t)
	mod := make([]byte, 3<<20) // over NATS's 1 MiB message limit
	for i := range mod {
		mod[i] = byte(i*7 + i>>9)
	}
	rec := deploy(t, reg, spec("big"), mod)
	got, err := reg.Module(t.Context(), rec)
	if err != nil {
		t.Fatalf("module: %v", err)
	}
	if !slices.Equal(got, mod) {
		t.Fatalf("module bytes differ: got %d bytes, want %d", len(got), len(mod))
	}
}

func TestNewOptions(t *testing.T) {
	s := newJetStream(t)
	ctx := t.Context()
	for _, opt := range []registry.Option{
		registry.WithEnv(""), registry.WithEnv("a.b"), registry.WithEnv("x y"),
		registry.WithRetain(0), registry.WithRetain(registry.MaxRetain + 1),
		registry.WithReplicas(0), registry.WithReplicas(6),
		registry.WithStorage(jetstream.StorageType(9)), registry.WithLogger(nil),
	} {
		if _, err := registry.New(ctx, s, opt); err == nil {
			t.Errorf("New accepted a bad option")
		}
	}
	if _, err := registry.New(ctx, nil); err == nil {
		t.Errorf("New accepted a nil JetStream")
	}

	// Environments are isolated buckets.
	staging, err := registry.New(ctx, s, registry.WithEnv("staging"), registry.WithStorage(jetstream.MemoryStorage), registry.WithLogger(quiet))
	if err != nil {
		t.Fatalf("new staging: %v", err)
	}
	if _, err := s.KeyValue(ctx, "nylon_staging_functions"); err != nil {
		t.Fatalf("bucket nylon_staging_functions: %v", err)
	}
	if _, err := s.ObjectStore(ctx, "nylon_staging_modules"); err != nil {
		t.Fatalf("bucket nylon_staging_modules: %v", err)
	}
	dev, err := registry.New(ctx, s, registry.WithLogger(quiet))
	if err != nil {
		t.Fatalf("new dev: %v", err)
	}
	deploy(t, staging, spec("only-staging"), wasm("s"))
	if _, err := dev.Get(ctx, "only-staging"); err == nil {
		t.Fatalf("dev sees a staging function")
	}

	// A second registry binds the existing buckets, even with other options.
	again, err := registry.New(ctx, s, registry.WithEnv("staging"), registry.WithRetain(3), registry.WithLogger(quiet))
	if err != nil {
		t.Fatalf("bind existing: %v", err)
	}
	if rec, err := again.Get(ctx, "only-staging"); err != nil || rec.Version != 1 {
		t.Fatalf("second registry get = %+v, %v", rec, err)
	}
}
