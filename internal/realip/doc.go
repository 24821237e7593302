// Package realip finds a request's client address behind trusted proxies,
// as nginx's real_ip module does with set_real_ip_from and
// real_ip_recursive on (and Envoy's xff_num_trusted_hops or Traefik's
// trustedIPs): when the TCP peer is a trusted proxy, X-Forwarded-For is
// walked from the right, skipping trusted addresses, and the first
// untrusted one is the client. An entry that is no address stops the walk
// at the last good one; a chain of trusted addresses only yields its
// leftmost. When the peer is not trusted, X-Forwarded-For is ignored and
// the client is the peer.
//
// The gateway resolves each request's client address with it (and passes
// it on to the WebSocket edge). The zero Proxies trusts nobody and costs a
// length check per request; with proxies, the prefixes are parsed once
// (net/netip) and a walk over canonical entries allocates nothing.
//
// It imports nothing from this project.
//
// # Example
//
//	proxies, err := realip.Parse([]string{"10.0.0.0/8", "2001:db8::1"})
//	if err != nil {
//		return err
//	}
//	ip, trusted := proxies.Resolve(r.RemoteAddr, r.Header["X-Forwarded-For"])
package realip
