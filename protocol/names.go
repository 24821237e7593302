package protocol

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrInvalidName is wrapped by every function-name and room-name validation failure.
var ErrInvalidName = errors.New("invalid name")

// MaxNameLen is the longest function name allowed.
const MaxNameLen = 63

// reservedNames are subject tokens with a meaning of their own under the prefix.
// "room" is reserved too: the events subject of a function named room
// ({prefix}.ws.room.events) would be the subject of the room "events".
var reservedNames = [...]string{"ws", "dlq", "room"}

// ValidateName reports whether name can name a function: it must match
// ^[a-z0-9][a-z0-9_-]{0,62}$ and must not be one of the reserved tokens
// "ws", "dlq" and "room". The name becomes a NATS subject token, a micro service
// name and a KV key, so the rule is the intersection of all three.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q is %d characters, at most %d", ErrInvalidName, truncate(name, 20), len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return fmt.Errorf("%w: %q: %s (want a-z, 0-9, '-', '_', starting with a letter or digit)", ErrInvalidName, name, describeChar(name, i))
		}
	}
	for _, r := range reservedNames {
		if name == r {
			return fmt.Errorf("%w: %q is reserved", ErrInvalidName, name)
		}
	}
	return nil
}

// ValidateRoom reports whether room can name a WebSocket room. A room is one
// subject token: 1 to 128 bytes of printable ASCII without '.', '*', '>' or
// whitespace.
func ValidateRoom(room string) error {
	if room == "" {
		return fmt.Errorf("%w: empty room", ErrInvalidName)
	}
	if len(room) > 128 {
		return fmt.Errorf("%w: room %q is %d bytes, at most 128", ErrInvalidName, truncate(room, 20), len(room))
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		if c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' {
			return fmt.Errorf("%w: room %q: %s is not allowed in a subject token", ErrInvalidName, room, describeChar(room, i))
		}
	}
	return nil
}

// describeChar names the character of s that starts at byte i and its
// position, counted in characters: the rune itself when s holds valid UTF-8
// there (not its first byte, which %q of a byte would print as another
// character: 'Ã' for the first byte of "é"), else the byte in hex.
func describeChar(s string, i int) string {
	pos := utf8.RuneCountInString(s[:i])
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte %#02x at %d (not UTF-8)", s[i], pos)
	}
	if r < utf8.RuneSelf {
		return fmt.Sprintf("character %q at %d", r, pos)
	}
	return fmt.Sprintf("character %q (%U) at %d", r, r, pos)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
