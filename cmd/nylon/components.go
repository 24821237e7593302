package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/nylon-functions/nylon/internal/natsconn"
)

// component is one long-running part of `nylon serve`: the function node,
// the HTTP/WebSocket gateway, the --admin listener (health, metrics and, with
// role admin, the admin API). serve starts the components of the selected
// roles in table order once NATS is connected, and drains them in reverse
// order on shutdown, before NATS itself is drained.
//
// A component may also implement `Done() <-chan struct{}` (closed when it
// stops by itself, e.g. its listener failed) and `Err() error` (why): serve
// then shuts everything down and exits with that error.
type component interface {
	// Start brings the component up and returns once it serves: listeners
	// bound, subscriptions made. ctx bounds start-up only. On error Start
	// releases what it set up; Drain is not called.
	Start(ctx context.Context) error
	// Drain stops taking new work, finishes in-flight work and releases the
	// component's resources, giving up when ctx (the --drain-timeout budget
	// shared by all components) is done. Called once, after Start succeeded.
	Drain(ctx context.Context) error
}

// serveDeps is what components are built from. The NATS connection belongs to
// serve; components use it and never close it.
type serveDeps struct {
	Config *serveConfig
	NATS   *natsconn.Conn
	Log    *slog.Logger
	// Stdout receives the one line per address a component listens on, e.g.
	// "gateway: http://127.0.0.1:8080".
	Stdout io.Writer
	// ShuttingDown is closed when serve starts to shut down, before
	// --shutdown-delay: the components still serve, but /healthz answers
	// 503 so load balancers take the process out of rotation.
	ShuttingDown <-chan struct{}
}

// componentSpec is one entry of the serve table.
type componentSpec struct {
	name string
	role string // started when --role includes it; "" in every process
	// build returns the component, not yet started.
	build func(ctx context.Context, deps serveDeps) (component, error)
}

// startedComponent is a component that started, with its table name.
type startedComponent struct {
	name string
	c    component
}

// startComponents builds and starts the components of roles in table order.
// It returns the ones that started, also on error, so the caller drains them.
func startComponents(ctx context.Context, deps serveDeps, specs []componentSpec, roles []string) ([]startedComponent, error) {
	enabled := map[string]bool{}
	for _, r := range roles {
		enabled[r] = true
	}
	var started []startedComponent
	for _, s := range specs {
		if s.role != "" && !enabled[s.role] {
			continue
		}
		c, err := s.build(ctx, deps)
		if err != nil {
			return started, fmt.Errorf("component %s: %w", s.name, err)
		}
		if err := c.Start(ctx); err != nil {
			return started, fmt.Errorf("component %s: start: %w", s.name, err)
		}
		deps.Log.Debug("component started", "component", s.name)
		started = append(started, startedComponent{name: s.name, c: c})
	}
	return started, nil
}

// waitForStop blocks until ctx is done (nil) or a component stops by itself
// (an error naming it).
func waitForStop(ctx context.Context, started []startedComponent) error {
	stopped := make(chan error, len(started))
	quit := make(chan struct{})
	defer close(quit)
	for _, s := range started {
		d, ok := s.c.(interface{ Done() <-chan struct{} })
		if !ok {
			continue
		}
		go func() {
			select {
			case <-d.Done():
				err := errors.New("stopped unexpectedly")
				if e, ok := s.c.(interface{ Err() error }); ok && e.Err() != nil {
					err = e.Err()
				}
				stopped <- fmt.Errorf("component %s: %w", s.name, err)
			case <-quit:
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-stopped:
		return err
	}
}

// drainComponents drains started components in reverse order, each with
// what is left of ctx, and joins their errors.
func drainComponents(ctx context.Context, log *slog.Logger, started []startedComponent) error {
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		s := started[i]
		if err := s.c.Drain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("component %s: drain: %w", s.name, err))
			continue
		}
		log.Debug("component drained", "component", s.name)
	}
	return errors.Join(errs...)
}
