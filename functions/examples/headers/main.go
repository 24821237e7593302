// Command headers is a response_filter that hardens upstream responses: it
// adds security headers, removes headers that reveal the server's software,
// and optionally rewrites status codes.
//
// Config:
//   - csp: the Content-Security-Policy (default "default-src 'self'").
//   - hsts: the Strict-Transport-Security value (default
//     "max-age=63072000; includeSubDomains").
//   - referrer_policy: the Referrer-Policy (default
//     "strict-origin-when-cross-origin").
//   - rewrite_status: comma-separated "from:to" pairs, e.g. "500:503,404:410".
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o headers.wasm .
package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nylon-functions/nylon/functions/sdk"
)

func init() {
	sdk.ResponseFilter(func(ctx *sdk.Context) {
		res := ctx.Response()
		res.SetHeader("Strict-Transport-Security", configOr(ctx, "hsts", "max-age=63072000; includeSubDomains"))
		res.SetHeader("X-Content-Type-Options", "nosniff")
		res.SetHeader("X-Frame-Options", "DENY")
		res.SetHeader("Referrer-Policy", configOr(ctx, "referrer_policy", "strict-origin-when-cross-origin"))
		if res.Header("Content-Security-Policy") == "" {
			res.SetHeader("Content-Security-Policy", configOr(ctx, "csp", "default-src 'self'"))
		}
		res.RemoveHeader("Server")
		res.RemoveHeader("X-Powered-By")

		if rules := ctx.Config("rewrite_status"); rules != "" {
			to, err := rewrite(rules, res.Status())
			if err != nil {
				ctx.Error(err)
				return
			}
			if to != 0 {
				res.SetStatus(to)
			}
		}
		if err := ctx.Err(); err != nil {
			ctx.Error(err)
		}
	})
}

func configOr(ctx *sdk.Context, key, def string) string {
	if v := ctx.Config(key); v != "" {
		return v
	}
	return def
}

// rewrite returns the status that rules ("500:503,404:410") map status to,
// or 0 when no rule matches.
func rewrite(rules string, status int) (int, error) {
	for rule := range strings.SplitSeq(rules, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(rule), ":")
		if !ok {
			return 0, fmt.Errorf("config rewrite_status: rule %q: want from:to", rule)
		}
		f, err := strconv.Atoi(from)
		if err != nil {
			return 0, fmt.Errorf("config rewrite_status: rule %q: %w", rule, err)
		}
		t, err := strconv.Atoi(to)
		if err != nil || t < 200 || t > 599 { // the statuses SetStatus takes
			return 0, fmt.Errorf("config rewrite_status: rule %q: bad status %q", rule, to)
		}
		if f == status {
			return t, nil
		}
	}
	return 0, nil
}

// main is never run: a reactor module starts from its init functions.
func main() {}
