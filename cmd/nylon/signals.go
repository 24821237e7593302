package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupts is how SIGINT and SIGTERM reach a command. The first cancels
// the context the command runs with, so it drains. A later one kills the
// process at once (the default action), as an operator pressing Ctrl-C
// twice expects, unless a command holds the signals: serve does during
// --shutdown-delay, where a second signal must end the delay, not the
// process.
//
// A nil *interrupts (tests calling run) holds nothing and never hurries.
type interrupts struct {
	sigs chan os.Signal

	mu       sync.Mutex
	hurry    chan struct{} // closed at the next signal after the first; nil: not held
	released chan struct{} // closed by the holder's release
}

// notifyInterrupts starts relaying SIGINT and SIGTERM: the returned context
// is canceled by the first.
func notifyInterrupts(parent context.Context) (context.Context, *interrupts) {
	ctx, cancel := context.WithCancel(parent)
	in := &interrupts{sigs: make(chan os.Signal, 1)}
	signal.Notify(in.sigs, os.Interrupt, syscall.SIGTERM)
	go in.relay(cancel)
	return ctx, in
}

// relay cancels the context at the first signal. It then hands the next
// one to the holder, if any, and restores the default handling as soon as
// nobody holds, so the signal after that kills the process.
func (in *interrupts) relay(cancel context.CancelFunc) {
	<-in.sigs
	cancel()
	for {
		in.mu.Lock()
		hurry, released := in.hurry, in.released
		if hurry == nil {
			signal.Stop(in.sigs)
			in.mu.Unlock()
			return
		}
		in.mu.Unlock()
		select {
		case <-in.sigs:
			in.mu.Lock()
			if in.hurry == hurry {
				close(hurry)
				in.hurry = nil
			}
			in.mu.Unlock()
		case <-released:
		}
	}
}

// Hold hands the next signal after the first to the caller instead of
// letting it kill the process: hurry is closed when it arrives. release
// (idempotent) ends the hold; a signal after it kills the process again.
// Hold before the first signal can arrive, or a quick second one may kill
// the process before the hold is taken. One holder at a time.
func (in *interrupts) Hold() (hurry <-chan struct{}, release func()) {
	if in == nil {
		return nil, func() {}
	}
	h, r := make(chan struct{}), make(chan struct{})
	in.mu.Lock()
	in.hurry, in.released = h, r
	in.mu.Unlock()
	var once sync.Once
	return h, func() {
		once.Do(func() {
			in.mu.Lock()
			if in.hurry == h {
				in.hurry = nil
			}
			in.mu.Unlock()
			close(r)
		})
	}
}
