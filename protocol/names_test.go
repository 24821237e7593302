package protocol

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"auth", true},
		{"my-func_2", true},
		{"9lives", true},
		{strings.Repeat("a", MaxNameLen), true},
		{"wss", true},
		{"dlqx", true},
		{"", false},
		{strings.Repeat("a", MaxNameLen+1), false},
		{"-lead", false},
		{"_lead", false},
		{"Upper", false},
		{"has.dot", false},
		{"has space", false},
		{"star*", false},
		{"gt>", false},
		{"ünï", false},
		{"ws", false},
		{"room", false},
		{"dlq", false},
	} {
		err := ValidateName(tc.name)
		if tc.ok && err != nil {
			t.Errorf("ValidateName(%q) = %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", tc.name, err)
		}
	}
	// Long names are truncated in the message.
	err := ValidateName(strings.Repeat("b", 100))
	if err == nil || strings.Contains(err.Error(), strings.Repeat("b", 21)) {
		t.Errorf("long-name error not truncated: %v", err)
	}
}

func TestValidateRoom(t *testing.T) {
	for _, tc := range []struct {
		room string
		ok   bool
	}{
		{"lobby", true},
		{"Room-1_A:b", true},
		{"~!@#$%^&()", true},
		{strings.Repeat("r", 128), true},
		{"", false},
		{strings.Repeat("r", 129), false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"tab\t", false},
		{"del\x7f", false},
		{"nul\x00", false},
		{"é", false},
	} {
		err := ValidateRoom(tc.room)
		if tc.ok && err != nil {
			t.Errorf("ValidateRoom(%q) = %v", tc.room, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateRoom(%q) = %v, want ErrInvalidName", tc.room, err)
		}
	}
}

// The refusal names the offending character itself and its position in
// characters, not the first byte of a multi-byte one.
func TestValidateNameReportsTheCharacter(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  func(string) error
		want string
	}{
		{"é", ValidateName, `character 'é' (U+00E9) at 0`},
		{"café-au-lait", ValidateName, `character 'é' (U+00E9) at 3`},
		{"a😀b", ValidateName, `character '😀' (U+1F600) at 1`},
		{"aB", ValidateName, `character 'B' at 1`},
		{"-x", ValidateName, `character '-' at 0`},
		{"a\xffb", ValidateName, `byte 0xff at 1 (not UTF-8)`},
		{"ñ.é", ValidateName, `character 'ñ' (U+00F1) at 0`},
		{"lobbyé", ValidateRoom, `character 'é' (U+00E9) at 5`},
		{"a b", ValidateRoom, `character ' ' at 1`},
		{"r\x80", ValidateRoom, `byte 0x80 at 1 (not UTF-8)`},
	} {
		err := tc.err(tc.name)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want ErrInvalidName saying %s", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Ã") {
			t.Errorf("%q: %v: reports a byte as a character", tc.name, err)
		}
	}
}

// Every reserved name is documented with its reason where operators look
// for the name rule (docs/NODE.md, "Names"), and listed among the names an
// upload is refused for.
func TestReservedNamesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "NODE.md"))
	if err != nil {
		t.Fatal(err)
	}
	var refused string
	for line := range strings.Lines(string(doc)) {
		if strings.HasPrefix(line, "| bad name (") {
			refused = line
		}
	}
	if refused == "" {
		t.Fatal(`docs/NODE.md has no "| bad name (...)" row`)
	}
	for _, name := range reservedNames {
		if !strings.Contains(string(doc), "\n| `"+name+"` | ") {
			t.Errorf("docs/NODE.md does not explain why %q is reserved (a \"| `%s` | why |\" row)", name, name)
		}
		if !strings.Contains(refused, "`"+name+"`") {
			t.Errorf("docs/NODE.md's bad-name row %q lacks %q", strings.TrimSpace(refused), name)
		}
	}
}

// TestValidateNameIsDesignRegexp: ValidateName accepts exactly the names
// DESIGN.md's rule ^[a-z0-9][a-z0-9_-]{0,62}$ accepts, less the reserved
// tokens, for every string of one and two bytes and at the length limit.
func TestValidateNameIsDesignRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	check := func(name string) {
		want := re.MatchString(name) && !slices.Contains(reservedNames[:], name)
		if got := ValidateName(name) == nil; got != want {
			t.Errorf("ValidateName(%q) ok = %v, want %v", name, got, want)
		}
	}
	for a := range 256 {
		check(string([]byte{byte(a)}))
		for b := range 256 {
			check(string([]byte{byte(a), byte(b)}))
		}
	}
	for _, n := range []string{"ws", "dlq", "room", "a" + strings.Repeat("-", 62), "a" + strings.Repeat("_", 63),
		"0" + strings.Repeat("9", 62), "z" + strings.Repeat("z", 62) + "z"} {
		check(n)
	}
}
