package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// terminalText returns s, which a function or a NATS responder chose (a
// reply's strings, a dead letter's error), with the control characters a
// terminal acts on (C0, DEL, C1) written as Go escapes (\x1b, \u009b), so
// that it cannot recolour, retitle or rewrite the terminal of whoever runs
// invoke or dlq, nor break a table's columns. A byte that is not UTF-8 is
// escaped too (\x9b): a terminal with 8-bit controls reads a raw 0x80-0x9f
// as C1. With lines, newline and tab are kept (a body's lines); without, a
// value stays on its line.
func terminalText(s string, lines bool) string {
	unsafe := func(r rune) bool {
		return (r < 0x20 && !(lines && (r == '\n' || r == '\t'))) || (r >= 0x7f && r < 0xa0) || r == utf8.RuneError
	}
	if !strings.ContainsFunc(s, unsafe) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i]) // not UTF-8: the byte itself
		case !unsafe(r) || r == utf8.RuneError:
			b.WriteString(s[i : i+size]) // U+FFFD written as such is text
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}
