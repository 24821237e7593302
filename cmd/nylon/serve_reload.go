package main

import (
	"context"
	"log/slog"
	"slices"
)

// reloadOnHangup makes SIGHUP reload what serve can reload in place, until
// stop is called: the --gateway-config file (serveShared.reloadGateway)
// and the listeners' TLS certificates, checked at once. Operators' tools
// send it to ask a daemon to reload (systemd's ExecReload, a certbot
// deploy hook, Kubernetes' reloader sidecars); its default action would
// end serve at once, dropping every request in flight. Certificates are
// re-read without it too, at the first handshake a second after their
// files changed; SIGHUP also makes an idle listener pick up a rotation,
// and logs what it found. Every other setting needs a restart.
//
// It takes SIGHUP over from main's catch (hangups.take), so a hang-up that
// came after the configuration files were read is acted on, not lost.
func reloadOnHangup(ctx context.Context, log *slog.Logger, early *hangups, certs serveTLS, shared *serveShared) (stop func()) {
	hup, stopHup := early.take()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				gw := shared.reloadGateway(ctx, log)
				if !certs.checkNow() && !gw {
					log.Info("SIGHUP: nothing to reload (no --gateway-config, no TLS certificates; other settings need a restart)")
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		stopHup()
		close(done)
	}
}

// reloadGateway re-reads --gateway-config and reloads the gateway with it
// (gateway.Gateway.Reload: plugins, routes and caller policies; a change
// to a messaging config's connection, subject_prefix or dlq is refused),
// logging the outcome: on failure the previous configuration keeps
// serving. False when this process has no gateway configuration to reload.
//
// The security rule runServe checked (gateway.Config.CheckSecurity) is not
// checked again: it reads only servers, tls and auth, which Reload refuses
// to change.
func (s *serveShared) reloadGateway(ctx context.Context, log *slog.Logger) bool {
	if s.cfg.GatewayConfig == "" || !slices.Contains(s.cfg.roles(), roleGateway) {
		return false
	}
	s.mu.Lock()
	g := s.gw
	if g == nil {
		s.reloadPending = true
	}
	s.mu.Unlock()
	if g == nil {
		log.Info("SIGHUP: the gateway is not built yet; its configuration is reloaded as soon as it is",
			"file", s.cfg.GatewayConfig)
		return true
	}
	if ctx.Err() != nil {
		// Draining: the configuration serves its last requests anyway.
		log.Info("SIGHUP: gateway configuration not reloaded: serve is shutting down", "file", s.cfg.GatewayConfig)
		return true
	}
	if err := g.gw.ReloadFile(ctx, s.cfg.GatewayConfig); err != nil {
		log.Error("SIGHUP: gateway configuration not reloaded; the previous one keeps serving",
			"file", s.cfg.GatewayConfig, "error", err)
		return true
	}
	log.Info("SIGHUP: gateway configuration reloaded", "file", s.cfg.GatewayConfig)
	return true
}
