package gateway

import (
	"net/http/httptest"
	"testing"
)

// Finding a request's client address costs no allocation: nothing with no
// trusted proxies (the default), nothing either behind trusted proxies
// whose X-Forwarded-For entries are canonical addresses.
func TestClientIPAllocations(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:41000"
	r.Header["X-Forwarded-For"] = []string{"6.6.6.6, 203.0.113.9", "10.0.0.2"}
	for _, tc := range []struct {
		proxies []string
		want    string
		trusted bool
	}{
		{nil, "10.0.0.1", false},
		{[]string{"192.168.0.0/16", "fd00::/8"}, "10.0.0.1", false},
		{[]string{"10.0.0.0/8", "fd00::/8"}, "203.0.113.9", true},
	} {
		var o options
		if err := WithTrustedProxies(tc.proxies...)(&o); err != nil {
			t.Fatal(err)
		}
		g := &Gateway{opts: o}
		if ip, trusted := g.clientIP(r); ip != tc.want || trusted != tc.trusted {
			t.Errorf("proxies %q: clientIP = %q, %v; want %q, %v", tc.proxies, ip, trusted, tc.want, tc.trusted)
		}
		if n := testing.AllocsPerRun(200, func() { _, _ = g.clientIP(r) }); n != 0 {
			t.Errorf("proxies %q: %v allocations per request, want 0", tc.proxies, n)
		}
	}
}
