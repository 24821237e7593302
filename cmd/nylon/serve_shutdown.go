package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// shutdownDelay is --shutdown-delay: after the signal that stops serve,
// every component goes on serving for delay while /healthz answers 503
// (state draining). A load balancer keeps sending new connections until its
// health checks see the process leave; closing the listeners at once would
// refuse them. It returns early, with nil, when hurry is closed (a second
// signal), and with the error of a component that stops by itself, since
// waiting longer serves nothing then.
//
// ctx is serve's, already done; the delay does not depend on it.
func shutdownDelay(ctx context.Context, a *app, log *slog.Logger, delay time.Duration, hurry <-chan struct{}, started []startedComponent) error {
	fmt.Fprintf(a.stdout, "nylon serve: shutting down in %v; serving on, /healthz answers 503 (Ctrl-C again drains now)\n", delay)
	log.Info("shutdown delay: serving on, /healthz answers 503 draining", "delay", delay)
	begin := time.Now()
	wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), delay)
	defer cancel()
	hurried := make(chan bool, 1)
	go func() {
		select {
		case <-hurry:
			hurried <- true
			cancel()
		case <-wait.Done():
			hurried <- false
		}
	}()
	err := waitForStop(wait, started)
	cancel()
	log.Info("shutdown delay over", "waited", time.Since(begin).Round(time.Millisecond), "cut_short", <-hurried)
	return err
}
