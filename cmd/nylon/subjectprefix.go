package main

import (
	"fmt"

	"github.com/nylon-functions/nylon/protocol"
)

// registerSubjectPrefix defines --subject-prefix (NYLON_SUBJECT_PREFIX),
// shared by serve and the NATS client commands so that they agree on where
// functions, rooms and dead letters live. Empty means nylon.<env>.
func registerSubjectPrefix(f *flagSet, p *string) {
	f.String(p, "subject-prefix", "prefix", "NYLON_SUBJECT_PREFIX", "",
		"prefix of every subject: functions {prefix}.{function}.{phase}, WebSocket events and rooms, dead letters (default nylon.<env>)")
}

// validateSubjectPrefix checks --subject-prefix; empty is the default.
func validateSubjectPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := protocol.ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("--subject-prefix: %w; want NATS subject tokens separated by '.', like acme.fn", err)
	}
	return nil
}

// subjectPrefix is prefix, or nylon.<env> when it is empty.
func subjectPrefix(prefix, env string) string {
	if prefix == "" {
		return protocol.Prefix(env)
	}
	return prefix
}
