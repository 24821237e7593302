package realip

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, []string{}},
		{[]string{"10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32", "::1"}, []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"}},
		// Bits below the length are dropped, as nginx does.
		{[]string{"10.1.2.3/8"}, []string{"10.0.0.0/8"}},
		// IPv4-mapped entries mean their IPv4 network.
		{[]string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.1"}, []string{"10.0.0.0/8", "192.0.2.1/32"}},
		{[]string{"0.0.0.0/0", "::/0"}, []string{"0.0.0.0/0", "::/0"}},
	} {
		p, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := p.Strings(); !slices.Equal(got, tc.want) || p.Len() != len(tc.want) {
			t.Errorf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.0/33", `"10.0.0.0/33": not an IP address or CIDR prefix`},
		{"2001:db8::/129", `"2001:db8::/129"`},
		{"10.0.0", `"10.0.0": not an IP address or CIDR prefix`},
		{"lb.internal", `"lb.internal"`},
		{"", `"": empty entry`},
		{"fe80::1%eth0", `"fe80::1%eth0": an IPv6 zone is not allowed`},
		{"fe80::/64%eth0", `"fe80::/64%eth0"`},
		{"10.0.0.1:80", `"10.0.0.1:80"`},
	} {
		_, err := Parse([]string{"127.0.0.1", tc.in})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want an error starting %s", tc.in, err, tc.want)
		}
	}
}

func TestTrusts(t *testing.T) {
	p := mustParse(t, "10.0.0.0/8", "2001:db8:1::/48", "192.0.2.7")
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true}, {"11.0.0.1", false}, {"192.0.2.7", true}, {"192.0.2.8", false},
		{"2001:db8:1::5", true}, {"2001:db8:2::5", false},
		{"::ffff:10.9.9.9", true}, // mapped: matched as IPv4
		{"fe80::1%eth0", false},
		{"2001:db8:1::5%eth0", true}, // a peer's zone is ignored
	} {
		if got := p.Trusts(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Trusts(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if p.Trusts(netip.Addr{}) || (Proxies{}).Trusts(netip.MustParseAddr("10.0.0.1")) {
		t.Error("the zero address, or the zero Proxies, trusted")
	}
}

// resolveCases are the walk's cases: also the fuzz target's seeds.
var resolveCases = []struct {
	name    string
	remote  string
	xff     []string
	want    string
	trusted bool
}{
	{"no header behind a trusted peer", "10.0.0.1:5000", nil, "10.0.0.1", true},
	{"untrusted peer: header ignored", "198.51.100.1:5000", []string{"203.0.113.9"}, "198.51.100.1", false},
	{"trusted peer: the rightmost untrusted entry", "10.0.0.1:5000", []string{"203.0.113.9, 10.0.0.2"}, "203.0.113.9", true},
	{"a spoofed entry left of the client is not reached", "10.0.0.1:5000", []string{"6.6.6.6, 203.0.113.9, 10.0.0.2"}, "203.0.113.9", true},
	{"every entry trusted: the leftmost", "10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3", true},
	{"several lines are one list", "10.0.0.1:5000", []string{"6.6.6.6, 203.0.113.9", "10.0.0.3", "10.0.0.2"}, "203.0.113.9", true},
	{"the client alone in the last line", "10.0.0.1:5000", []string{"10.0.0.4", "203.0.113.9"}, "203.0.113.9", true},
	{"garbage rightmost: the peer", "10.0.0.1:5000", []string{"203.0.113.9, garbage"}, "10.0.0.1", true},
	{"garbage after trusted entries: the last good one", "10.0.0.1:5000", []string{"203.0.113.9, nope, 10.0.0.2"}, "10.0.0.2", true},
	{"unknown (RFC 7239 style) is garbage", "10.0.0.1:5000", []string{"203.0.113.9, unknown"}, "10.0.0.1", true},
	{"empty elements and white space ignored", "10.0.0.1:5000", []string{" 203.0.113.9 ,, \t10.0.0.2\t, ", ""}, "203.0.113.9", true},
	{"ports and brackets", "10.0.0.1:5000", []string{"203.0.113.9:4711, [2001:db8:1::9]:443"}, "203.0.113.9", true},
	{"bracketed IPv6 client", "10.0.0.1:5000", []string{"[2001:db8::7]"}, "2001:db8::7", true},
	{"bracketed IPv4 is garbage", "10.0.0.1:5000", []string{"[203.0.113.9]"}, "10.0.0.1", true},
	{"a zone is garbage", "10.0.0.1:5000", []string{"fe80::1%eth0"}, "10.0.0.1", true},
	{"IPv6 peer and chain", "[2001:db8:1::1]:5000", []string{"2001:db8::7, 2001:db8:1::2"}, "2001:db8::7", true},
	{"IPv6 canonical form", "[2001:db8:1::1]:5000", []string{"2001:DB8:0:0::7"}, "2001:db8::7", true},
	{"IPv4-mapped entry as IPv4", "10.0.0.1:5000", []string{"::ffff:203.0.113.9"}, "203.0.113.9", true},
	{"IPv4-mapped peer", "[::ffff:10.0.0.1]:5000", []string{"203.0.113.9"}, "203.0.113.9", true},
	{"peer with no port", "10.0.0.1", []string{"203.0.113.9"}, "203.0.113.9", true},
	{"peer that is no address", "@", []string{"203.0.113.9"}, "@", false},
	{"only commas", "10.0.0.1:5000", []string{",,,", " , "}, "10.0.0.1", true},
}

func TestResolve(t *testing.T) {
	p := mustParse(t, "10.0.0.0/8", "2001:db8:1::/48")
	for _, tc := range resolveCases {
		got, trusted := p.Resolve(tc.remote, tc.xff)
		if got != tc.want || trusted != tc.trusted {
			t.Errorf("%s: Resolve(%q, %q) = %q, %v; want %q, %v", tc.name, tc.remote, tc.xff, got, trusted, tc.want, tc.trusted)
		}
	}
	// Trusting nobody is the peer, always.
	for _, tc := range resolveCases {
		if got, trusted := (Proxies{}).Resolve(tc.remote, tc.xff); got != Host(tc.remote) || trusted {
			t.Errorf("%s, no proxies: %q, %v; want the peer %q", tc.name, got, trusted, Host(tc.remote))
		}
	}
}

// Nothing configured costs nothing; a walk over canonical entries
// allocates nothing either.
func TestResolveAllocations(t *testing.T) {
	xff := []string{"6.6.6.6, 203.0.113.9, 10.0.0.3", "10.0.0.2"}
	var none Proxies
	if n := testing.AllocsPerRun(100, func() { _, _ = none.Resolve("10.0.0.1:5000", xff) }); n != 0 {
		t.Errorf("no proxies: %v allocations per request, want 0", n)
	}
	p := mustParse(t, "10.0.0.0/8", "2001:db8:1::/48")
	if n := testing.AllocsPerRun(100, func() { _, _ = p.Resolve("10.0.0.1:5000", xff) }); n != 0 {
		t.Errorf("trusted chain: %v allocations per request, want 0", n)
	}
	v6 := []string{"2001:db8::7, 2001:db8:1::2"}
	if n := testing.AllocsPerRun(100, func() { _, _ = p.Resolve("[2001:db8:1::1]:5000", v6) }); n != 0 {
		t.Errorf("trusted IPv6 chain: %v allocations per request, want 0", n)
	}
}

// FuzzResolve checks the walk against a plain reference (split every line,
// walk the list backwards) and that the client is never anything but the
// peer or a well-formed address of the header.
func FuzzResolve(f *testing.F) {
	for _, tc := range resolveCases {
		f.Add(tc.remote, strings.Join(tc.xff, "\n"))
	}
	p := mustParse(f, "10.0.0.0/8", "2001:db8:1::/48", "127.0.0.1")
	f.Fuzz(func(t *testing.T, remote, header string) {
		var xff []string
		if header != "" {
			xff = strings.Split(header, "\n")
		}
		got, trusted := p.Resolve(remote, xff)
		want, wantTrusted := reference(p, remote, xff)
		if got != want || trusted != wantTrusted {
			t.Fatalf("Resolve(%q, %q) = %q, %v; reference %q, %v", remote, xff, got, trusted, want, wantTrusted)
		}
		if got == Host(remote) {
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil || a.Zone() != "" || a.Is4In6() || a.String() != got {
			t.Fatalf("Resolve(%q, %q) = %q: not the peer nor a canonical address", remote, xff, got)
		}
		if !trusted {
			t.Fatalf("Resolve(%q, %q) = %q from the header behind an untrusted peer", remote, xff, got)
		}
	})
}

// reference is Resolve written plainly.
func reference(p Proxies, remote string, xff []string) (string, bool) {
	client := Host(remote)
	peer, err := netip.ParseAddr(client)
	if err != nil || !p.Trusts(peer) {
		return client, false
	}
	var entries []string
	for _, line := range xff {
		entries = append(entries, strings.Split(line, ",")...)
	}
	for _, e := range slices.Backward(entries) {
		e = strings.Trim(e, " \t")
		if e == "" {
			continue
		}
		a, ok := parseEntry(e)
		if !ok {
			break
		}
		client = a.String()
		if !p.Trusts(a) {
			break
		}
	}
	return client, true
}

func mustParse(t testing.TB, entries ...string) Proxies {
	t.Helper()
	p, err := Parse(entries)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
