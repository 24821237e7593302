// Package gateway is the HTTP edge of Nylon Functions, the caller side of
// the wire protocol (the seed's "Nylon side"): it matches a request to a
// route, runs the route's plugin chain as phase calls over NATS
// request/reply with each plugin's caller policies, proxies to the route's
// origin (an upstream URL or a function) and answers.
//
// Per request: the path is made canonical (dot segments, percent-encoded
// ones too, resolved and slashes merged) and routed on; the body is read up
// to the route's limit (413 beyond); each plugin's request_filter runs in
// order (End answers with the plugin's ops, Next may change the request
// headers sent upstream and queue response headers); the origin answers
// (httputil.ReverseProxy to the upstream, or the function's request_filter,
// which must End); each response_filter may change status, headers and body
// before anything is written; the body streams through response_body_filter
// in chunks; logging runs afterwards in a bounded worker pool that never
// blocks a request.
//
// Every phase call carries the whole invocation context (request with route
// parameters and client IP, upstream response, config), a fresh UUIDv7
// request_id shared by its retries, the session id of the HTTP request, and
// the traceparent and Nylon-Env headers. Failures map to the seed's kinds
// (Timeout, NoResponder, Decode, Plugin) and to RFC 9457 problem responses;
// on_error decides between continue, end and retry; max_inflight with
// overflow_policy queue, reject or shed bounds each messaging config; after
// the last failed attempt a request goes to the dead-letter subject.
//
// Routes come from the configuration and, for deployed functions, from
// SetFunctionRoutes, which swaps the route table atomically. Reload (and
// ReloadFile) swaps a new configuration in the same way: plugins, routes and
// caller policies change for the next request, requests in flight finish
// with what they started with, the function routes stay, and an invalid
// configuration, or one changing a messaging config's connection, prefix or
// dead-letter stream (ErrRestartRequired), changes nothing.
//
// Behind load balancers, WithTrustedProxies names them: a request from one
// gets its client IP from X-Forwarded-For (walked from the right past
// trusted addresses), and its X-Forwarded-* chain goes on upstream. By
// default nobody is trusted and the client is the TCP peer.
//
// WithAccessLog turns on an access log: one INFO line per request, never
// sampled, written when the request is over (a WebSocket's when its
// connection ends). Off by default; off, it costs no allocation.
//
// The package imports only protocol (and internal/logsample, which samples
// its per-request log lines; internal/natsready, which keeps calls out of a
// reconnecting connection's buffer; internal/realip, which finds the client
// address behind trusted proxies) from this project: it talks to platform
// nodes through NATS alone.
//
// # Example
//
//	cfg, err := gateway.LoadConfig("gateway.yaml")
//	if err != nil {
//		return err // "gateway.yaml:12: field \"timout_ms\" not found in type gateway.PhasePolicy"
//	}
//	if err := cfg.ApplyEnv(os.LookupEnv); err != nil { // NYLON_NATS_URLS
//		return err
//	}
//	nc, err := cfg.Messaging[0].Connect()
//	if err != nil {
//		return err
//	}
//	gw, err := gateway.New(*cfg, nc, gateway.WithRegisterer(reg))
//	if err != nil {
//		return err
//	}
//	defer gw.Close(context.Background())
//	if err := gw.Start(ctx); err != nil { // dead-letter streams
//		return err
//	}
//	gw.SetFunctionRoutes([]gateway.FunctionRoute{{Path: "/hello", Function: "hello"}})
//	return http.ListenAndServe("127.0.0.1:8080", gw)
package gateway
