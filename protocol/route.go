package protocol

import "strings"

// RouteKey returns the form under which chi (the gateway's router) files a
// route pattern: two patterns with the same key are one route to chi, and
// the one mounted last silently replaces the other. Parameter names do not
// count ("/a/{x}" and "/a/{y}" both key "/a/{}"); a regexp parameter keeps
// its expression, anchored as chi anchors it ("{id:[0-9]+}" and
// "{n:^[0-9]+$}" both key "{:^[0-9]+$}"), and differs from a plain
// parameter. The admin API refuses a deploy whose route has the key of
// another function's route, and the gateway settles what races past it by
// the same key.
//
// A pattern with an unclosed "{" is returned as it is (chi refuses it).
func RouteKey(pattern string) string {
	if strings.IndexByte(pattern, '{') < 0 {
		return pattern
	}
	var b strings.Builder
	b.Grow(len(pattern))
	rest := pattern
	for {
		ps := strings.IndexByte(rest, '{')
		if ps < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:ps])
		// chi reads to the matching '}', counting nested braces (a regexp
		// such as {n:[0-9]{3}} has its own).
		pe, depth := -1, 0
		for i := ps; i < len(rest) && pe < 0; i++ {
			switch rest[i] {
			case '{':
				depth++
			case '}':
				if depth--; depth == 0 {
					pe = i
				}
			}
		}
		if pe < 0 {
			return pattern
		}
		b.WriteByte('{')
		if _, re, isRegexp := strings.Cut(rest[ps+1:pe], ":"); isRegexp {
			b.WriteByte(':')
			if re != "" {
				if re[0] != '^' {
					b.WriteByte('^')
				}
				b.WriteString(re)
				if re[len(re)-1] != '$' {
					b.WriteByte('$')
				}
			}
		}
		b.WriteByte('}')
		rest = rest[pe+1:]
	}
}
