package natsconn

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

// authOptions turns the TLS and credential fields into nats.go options. Files
// are read here, so a missing or malformed one fails before dialing.
func authOptions(cfg Config) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLS.CAFile))
	}
	if cfg.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLS.CertFile, cfg.TLS.KeyFile))
	}
	if cfg.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %w", cfg.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	return opts, nil
}

// connectExternal dials urls, giving up when ctx is done (nats.Connect
// itself takes no context; a late connection is closed when it arrives).
func connectExternal(ctx context.Context, urls []string, opts []nats.Option) (*nats.Conn, error) {
	type result struct {
		nc  *nats.Conn
		err error
	}
	servers := make([]string, len(urls))
	for i, u := range urls {
		servers[i] = strings.TrimSpace(u)
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(strings.Join(servers, ","), opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("nats connect %s: %w", redactURLs(servers), r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("nats connect %s: %w", redactURLs(servers), ctx.Err())
	}
}

// redactURLs joins urls for messages with any user info replaced by
// "xxxxx": a lone user name in a URL is how nats.go passes a token.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, raw := range urls {
		u, err := parseServerURL(raw)
		if err != nil {
			out[i] = "<invalid url>"
			continue
		}
		if u.User != nil {
			u.User = url.User("xxxxx")
		}
		out[i] = u.String()
	}
	return strings.Join(out, ",")
}
