// Command nylon is the one binary of Nylon Functions: `nylon serve` runs the
// platform (function node, HTTP/WebSocket gateway, admin API) on an embedded
// or external NATS, and the other subcommands are thin clients of the admin
// API and of NATS.
//
// main stays thin: run(ctx, args, stdout, stderr) holds the logic and
// returns the exit code (0 ok or help, 1 failure, 2 usage error), so tests
// call it directly. main adds the process's signals (signals.go): the first
// SIGINT/SIGTERM cancels the command's context, a second kills the process
// unless serve holds it during --shutdown-delay; SIGHUP is caught from the
// first line of main, so one sent while serve starts does not kill it, and
// given back to every other command (hangups). Each subcommand lives in
// cmd_<name>.go with a constructor returning a command, listed in
// commands(). Flags come from a flagSet whose every flag may fall back to a
// NYLON_* environment variable (a flag wins over the variable, the variable
// over the default).
//
// serve checks its whole configuration (--gateway-config and the listeners'
// TLS certificates included) before it starts anything, then starts the
// components of the selected roles (the componentSpec table in
// serve_components.go) in order after NATS is
// connected and, on a signal, serves on for --shutdown-delay with /healthz
// answering 503, then drains them in reverse order, then NATS, within
// --drain-timeout. The --admin listener (serve_admin.go: /healthz, /metrics,
// and the admin API with role admin) runs in every process. Either listener
// serves HTTPS with a certificate pair, re-read when its files change
// (serve_tls.go). Before it starts, serve sets Go's soft memory limit
// from --memory-limit, by default 90 % of its cgroup's memory limit
// (memlimit.go).
//
// # Example
//
//	nylon serve                                  # embedded NATS on 127.0.0.1:4222, data in ./data
//	nylon serve --nats tls://nats:4222 --nats-ca ca.pem --nats-creds nylon.creds --env prod
//	NYLON_ROLE=gateway NYLON_NATS_URLS=nats://10.0.0.5:4222 nylon serve
//	nylon deploy hello hello.wasm --route /hello --config greeting=hi
//	nylon ls; nylon versions hello; nylon rollback hello; nylon rm hello
//	nylon invoke hello --phase request_filter --path /hello?name=you
//	nylon dlq ls; nylon dlq replay --all --delete
//	nylon bench -c 32 -d 30s 'http://127.0.0.1:8080/hello?name=x'
//	nylon version
package main
