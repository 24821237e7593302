package main

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/net/netutil"
)

// httpLimits bound what HTTP clients of the gateway can hold: a request
// must arrive whole within ReadTimeout (a client trickling its body holds
// a connection and a goroutine), an idle keep-alive connection is closed
// after IdleTimeout, and at most MaxConns connections are open at once.
// Without the cap, idle connections can use up the process's file
// descriptors, and JetStream then fails its writes (the embedded server
// shares the process's descriptors). Upgraded WebSocket connections count
// against MaxConns but not the timeouts (net/http clears the deadlines of
// a hijacked connection; the edge pings them instead).
type httpLimits struct {
	ReadTimeout time.Duration
	IdleTimeout time.Duration
	MaxConns    int
}

func (l *httpLimits) register(f *flagSet) {
	f.Duration(&l.ReadTimeout, "http-read-timeout", "NYLON_HTTP_READ_TIMEOUT", time.Minute,
		"time a gateway request, body included, has to arrive; a slower client gets its connection closed")
	f.Duration(&l.IdleTimeout, "http-idle-timeout", "NYLON_HTTP_IDLE_TIMEOUT", 2*time.Minute,
		"how long the gateway keeps an idle keep-alive connection open")
	f.Int(&l.MaxConns, "http-max-connections", "n", "NYLON_HTTP_MAX_CONNECTIONS", 0,
		"gateway connections open at once (WebSocket included); more wait to be accepted. 0: half the process's open-file limit")
}

func (l *httpLimits) validate() error {
	if l.ReadTimeout < 0 {
		return fmt.Errorf("--http-read-timeout: %v is negative", l.ReadTimeout)
	}
	if l.IdleTimeout < 0 {
		return fmt.Errorf("--http-idle-timeout: %v is negative", l.IdleTimeout)
	}
	if l.MaxConns < 0 {
		return fmt.Errorf("--http-max-connections: %d is negative", l.MaxConns)
	}
	return nil
}

// headerTimeout is how long a request's headers may take: 10 s, or the
// read timeout when that is shorter (net/http applies ReadHeaderTimeout,
// not ReadTimeout, to the headers when both are set, so a longer one would
// let a slowloris client outlast the read timeout).
func (l *httpLimits) headerTimeout() time.Duration {
	if l.ReadTimeout > 0 {
		return min(10*time.Second, l.ReadTimeout)
	}
	return 10 * time.Second
}

// maxConns is MaxConns, or half the open-file limit when it is 0: the
// other half stays for NATS, JetStream's files and upstream connections.
func (l *httpLimits) maxConns() int {
	if l.MaxConns > 0 {
		return l.MaxConns
	}
	return max(openFileLimit()/2, 64)
}

// listener caps ln at maxConns connections: Accept waits for a slot, as
// nginx's worker_connections does not (it drops), so a burst queues in
// the kernel's backlog instead of failing.
func (l *httpLimits) listener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, l.maxConns())
}
