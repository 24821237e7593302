package realip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Proxies is a set of trusted proxy networks, parsed once by Parse. The
// zero value trusts nobody. It is immutable and safe for concurrent use.
type Proxies struct {
	prefixes []netip.Prefix
}

// Parse parses entries, each an IPv4 or IPv6 address (a /32 or /128) or a
// CIDR prefix ("10.0.0.0/8", "fd00::/8"). Surrounding spaces are ignored;
// bits set below a prefix's length are dropped (10.1.2.3/8 is 10.0.0.0/8),
// as nginx's set_real_ip_from does; an IPv4-mapped IPv6 entry
// (::ffff:10.0.0.0/104) means its IPv4 network. An entry that is empty, not
// an address or prefix, or carries an IPv6 zone is an error naming it.
// No entries: the zero Proxies.
func Parse(entries []string) (Proxies, error) {
	var p Proxies
	for _, e := range entries {
		pfx, err := parsePrefix(strings.TrimSpace(e))
		if err != nil {
			return Proxies{}, fmt.Errorf("%q: %w", e, err)
		}
		p.prefixes = append(p.prefixes, pfx)
	}
	return p, nil
}

var errEmpty = errors.New("empty entry")

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errEmpty
	}
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if pfx, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR prefix: %w", err)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR prefix: %w", err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("an IPv6 zone is not allowed")
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
		// Addresses are unmapped before they are matched: an
		// IPv4-mapped prefix would otherwise match nothing.
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	return pfx.Masked(), nil
}

// Len is the number of trusted prefixes; 0 trusts nobody.
func (p Proxies) Len() int { return len(p.prefixes) }

// Strings returns the trusted prefixes in their canonical form, in the
// order given.
func (p Proxies) Strings() []string {
	out := make([]string, len(p.prefixes))
	for i, pfx := range p.prefixes {
		out[i] = pfx.String()
	}
	return out
}

// Trusts reports whether a is in a trusted prefix. An IPv4-mapped IPv6
// address is matched as its IPv4 address, and a zone is ignored.
func (p Proxies) Trusts(a netip.Addr) bool {
	if len(p.prefixes) == 0 || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, pfx := range p.prefixes {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// Host is the host part of remoteAddr (http.Request.RemoteAddr), or
// remoteAddr whole when it has no port: the client address of a request
// with no trusted proxy in front.
func Host(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// Resolve returns the client address of a request from the TCP peer
// remoteAddr (http.Request.RemoteAddr) carrying the X-Forwarded-For header
// lines xff (http.Header values: several lines are one list, in order),
// and whether the peer is trusted.
//
// An untrusted peer (or one that is no IP address) is the client: xff is
// not read. Behind a trusted peer, xff is walked from the right: an entry
// in a trusted prefix is skipped, the first one that is not is the client;
// when every entry is trusted, the leftmost is. An entry that is not an
// address stops the walk: the client is then the last good address walked
// (the peer, when it is the rightmost entry), never the garbage. Empty
// list elements are ignored, as RFC 9110 asks of list headers. Entries may
// be "ip", "[ipv6]", "ipv4:port" or "[ipv6]:port"; an entry with an IPv6
// zone is not an address. An address from xff is returned in its canonical
// form, IPv4-mapped IPv6 as IPv4.
//
// With no trusted proxies it does what Host does and allocates nothing;
// with some, it allocates only for an entry that is not already in its
// canonical form.
func (p Proxies) Resolve(remoteAddr string, xff []string) (client string, trusted bool) {
	client = Host(remoteAddr)
	if len(p.prefixes) == 0 {
		return client, false
	}
	peer, err := netip.ParseAddr(client)
	if err != nil || !p.Trusts(peer) {
		return client, false
	}
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var entry string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				entry, line = line[j+1:], line[:j]
			} else {
				entry, line = line, ""
			}
			entry = trimOWS(entry)
			if entry == "" {
				continue
			}
			a, ok := parseEntry(entry)
			if !ok {
				return client, true
			}
			client = canonical(a, entry)
			if !p.Trusts(a) {
				return client, true
			}
		}
	}
	return client, true
}

// trimOWS trims HTTP's optional white space (spaces and tabs).
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseEntry parses one X-Forwarded-For entry: an address, optionally
// with a port (some balancers append one) or, for IPv6, in brackets. The
// address is unmapped; zones are refused (no client has one worth
// trusting).
func parseEntry(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		switch ap, perr := netip.ParseAddrPort(s); {
		case perr == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil || !a.Is6() {
				return netip.Addr{}, false
			}
		default:
			return netip.Addr{}, false
		}
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// canonical returns a's canonical text: entry itself when it already is
// (no allocation), else a new string.
func canonical(a netip.Addr, entry string) string {
	var buf [64]byte // longer than any address's text
	b := a.AppendTo(buf[:0])
	if string(b) == entry {
		return entry
	}
	return string(b)
}
