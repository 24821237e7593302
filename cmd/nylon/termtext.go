package main

import (
	"fmt"
	"strings"
)

// terminalText returns s, which a function or a NATS responder chose (a
// reply's strings, a dead letter's error), with the control characters a
// terminal acts on (C0, DEL, C1) written as Go escapes (\x1b, \u009b), so
// that it cannot recolour, retitle or rewrite the terminal of whoever runs
// invoke or dlq, nor break a table's columns. With lines, newline and tab
// are kept (a body's lines); without, a value stays on its line.
func terminalText(s string, lines bool) string {
	unsafe := func(r rune) bool {
		return (r < 0x20 && !(lines && (r == '\n' || r == '\t'))) || (r >= 0x7f && r < 0xa0)
	}
	if !strings.ContainsFunc(s, unsafe) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !unsafe(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
