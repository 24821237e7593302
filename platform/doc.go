// Package platform is the Nylon Functions node and its admin API.
//
// A Node watches the registry (JetStream KV) and serves every active
// function as a NATS micro service on this node: service name = function
// name, version "1.0.<deployment version>", metadata with the node id, env,
// module sha256 and deployment version, and one endpoint per phase the
// module handles on nylon.{env}.{function}.{phase} (WebSocket events on
// nylon.{env}.ws.{function}.events), all in the function's queue group, so
// nodes serving the same function share its load and `nats micro ls|info|
// stats` show every function, the nodes serving it and exact counts.
//
// Each request is admitted on its endpoint's subscription goroutine (size
// check, envelope decode, deduplication by session, phase and request id)
// into the serving version's bounded worker pool (max_workers workers, then
// a bounded queue, then an immediate 503 "overloaded"), run by wasmhost
// under the function's timeout, and answered with a PluginResponse echoing
// the request id, session id and traceparent. Handler failures (the guest's
// Error, traps, timeouts) are answered with action Error; transport failures
// with a micro error (400 decode, 413 too large, 503 overloaded, 500
// internal).
//
// New versions are fetched, verified and compiled in the background and
// swapped in atomically: requests already admitted finish on the old
// version, whose module is closed afterwards; a version that fails to load
// leaves the previous one serving and is reported in the log, the metrics
// and /healthz. Drain stops intake, answers what was admitted and closes the
// modules. See docs/NODE.md for operation.
//
// An Admin is the HTTP API (chi) to deploy, list, inspect, roll back and
// delete functions and to list nodes, plus /healthz and /metrics. Errors are
// RFC 9457 problem+json; /v1 requires the bearer token outside "dev".
//
// platform imports protocol, wasmhost, registry and internal/logsample (which
// samples its per-request log lines); the edges (gateway, ws) never import
// it: they reach nodes only over NATS.
//
// # Example
//
//	reg, _ := registry.New(ctx, js)
//	node, err := platform.NewNode(platform.Config{
//		NATS:     nc,
//		Registry: reg,
//		Env:      "dev",
//		Metrics:  promRegistry,
//	})
//	if err != nil { ... }
//	if err := node.Start(ctx); err != nil { ... }
//	admin, err := platform.NewAdmin(ctx, platform.AdminConfig{
//		Addr: "127.0.0.1:8081", Registry: reg, NATS: nc,
//		Metrics: promRegistry, Health: node, Token: os.Getenv("NYLON_ADMIN_TOKEN"),
//	})
//	if err != nil { ... }
//	if err := admin.Start(ctx); err != nil { ... }
//	<-ctx.Done()
//	drain, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	defer cancel()
//	_ = admin.Drain(drain)
//	_ = node.Drain(drain)
package platform
