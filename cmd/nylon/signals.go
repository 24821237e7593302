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

// hangups catches SIGHUP from the start of main. Its default action ends
// the process, and serve's handler (reloadOnHangup) is installed only once
// the configuration is loaded: a reload signal in that window (systemd's
// ExecReload, a certificate hook, a config reloader racing a restart)
// would kill a process that is starting up. Commands other than serve give
// it back with restore, so a short CLI command still ends at a hang-up,
// as a terminal that closes expects.
//
// A nil *hangups (tests calling run) catches nothing: take notifies a
// channel of its own, and restore and dropEarly do nothing.
type hangups struct {
	ch chan os.Signal
}

// catchHangups starts catching SIGHUP; call it first thing in main.
func catchHangups() *hangups {
	h := &hangups{ch: make(chan os.Signal, 1)}
	signal.Notify(h.ch, syscall.SIGHUP)
	return h
}

// restore gives SIGHUP its handling from before catchHangups back: the
// default action, or ignored when the process was started with it ignored
// (nohup). A hang-up caught meanwhile is sent again, so it has the effect
// it would have had without the catch.
func (h *hangups) restore() {
	if h == nil {
		return
	}
	signal.Stop(h.ch)
	select {
	case <-h.ch:
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Signal(syscall.SIGHUP) // no SIGHUP to send on Windows, nor to catch
		}
	default:
	}
}

// dropEarly discards the hang-ups caught so far and reports whether there
// was one. serve calls it just before it reads its configuration files, so
// what those signals asked for (read the files again) is done anyway.
func (h *hangups) dropEarly() bool {
	if h == nil {
		return false
	}
	select {
	case <-h.ch:
		return true
	default:
		return false
	}
}

// take hands SIGHUP to the caller: the channel receives every hang-up from
// now on, and one caught since dropEarly, which came after the files were
// read. stop ends the catch, as restore does but dropping what is caught.
// One taker.
func (h *hangups) take() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	if h != nil {
		ch = h.ch
	} else {
		signal.Notify(ch, syscall.SIGHUP)
	}
	return ch, func() { signal.Stop(ch) }
}
