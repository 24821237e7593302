package realip_test

import (
	"fmt"

	"github.com/nylon-functions/nylon/internal/realip"
)

// Behind a balancer in 10.0.0.0/8, the client is the rightmost
// X-Forwarded-For entry that is not trusted; a peer outside the list is
// the client itself, whatever header it sent.
func ExampleProxies_Resolve() {
	proxies, err := realip.Parse([]string{"10.0.0.0/8", "2001:db8::1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	xff := []string{"6.6.6.6, 203.0.113.9, 10.0.0.2"}
	fmt.Println(proxies.Resolve("10.0.0.1:5000", xff))
	fmt.Println(proxies.Resolve("198.51.100.1:5000", xff))

	_, err = realip.Parse([]string{"10.0.0.0/33"})
	fmt.Println(err != nil)
	// Output:
	// 203.0.113.9 true
	// 198.51.100.1 false
	// true
}
