// Package registry stores function deployments in JetStream: one KV bucket
// (nylon_{env}_functions) of immutable, numbered deployment records and an
// Object Store bucket (nylon_{env}_modules) of module bytes named by their
// lowercase hex sha256, so modules over NATS's 1 MiB message limit fit and
// identical bytes are stored once.
//
// Every Deploy makes a new version (1, 2, 3, ... per function) and moves the
// function's active pointer to it; both steps are revision-checked writes, so
// concurrent deploys never lose one. The newest Retain versions (default 10)
// stay listable and any of them can be made active again with Rollback;
// older versions and the module objects nothing references any more are
// deleted after each deploy, together with the Object Store's metadata of
// them. No Deploy, Rollback, Delete or GC, however they interleave, leaves
// the active pointer or a retained version naming a module that is not
// stored: Deploy checks its object after each write that references it, and
// Rollback refuses (or undoes) a move to a version whose object is gone.
// Nodes and gateways call Watch to learn the active functions and every
// change to them, and Module to fetch bytes that are checked against the
// record's sha256 before anyone loads them.
//
// The registry takes already validated modules (the admin API checks them
// with wasmhost.Validate first) and imports only protocol. The caller owns
// the NATS connection.
//
// # Example
//
//	reg, err := registry.New(ctx, js, registry.WithEnv("prod"), registry.WithReplicas(3))
//	if err != nil { ... }
//	rec, err := reg.Deploy(ctx, registry.Spec{
//		Name:   "auth",
//		Phases: protocol.PhaseSetOf(protocol.PhaseRequestFilter),
//		Routes: []string{"/api/"},
//		Limits: registry.Limits{TimeoutMS: 500},
//	}, wasm)
//	// rec.Version == 1, rec.Active == true
//
//	w, err := reg.Watch(ctx)
//	defer w.Stop()
//	for ev := range w.Updates() {
//		switch ev.Type {
//		case registry.EventPut:
//			wasm, err := reg.Module(ctx, ev.Record) // verified bytes
//			...
//		case registry.EventDelete:
//			// stop serving ev.Name
//		case registry.EventReady:
//			// initial state loaded
//		}
//	}
package registry
