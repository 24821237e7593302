package registry

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrNotFound is wrapped by every error about a function, version or
	// module that does not exist (or is no longer retained). Errors that come
	// from JetStream also wrap jetstream.ErrKeyNotFound or
	// jetstream.ErrObjectNotFound.
	ErrNotFound = errors.New("not found")

	// ErrConflict is wrapped when a revision-checked write kept losing to
	// concurrent writers. Errors that come from JetStream also wrap
	// jetstream.ErrKeyRevisionMismatch (or jetstream.ErrKeyExists for a
	// create).
	ErrConflict = errors.New("conflict")

	// ErrInvalidSpec is wrapped by every Spec.Validate failure; the message
	// names the field.
	ErrInvalidSpec = errors.New("invalid spec")

	// ErrCorruptModule is returned by Module when the stored bytes do not hash
	// to the record's sha256 or do not have its size. A loader must refuse
	// such a module.
	ErrCorruptModule = errors.New("corrupt module")
)

// isConflict reports whether err is a lost revision check. It checks
// ErrKeyRevisionMismatch (Update, Delete/Purge with LastRevision; both 10071
// and the 10164 that replicated streams send map to it), ErrKeyExists (Create
// on a live key) and the raw wrong-last-sequence API error, which Create
// returns unmapped when it races while re-creating a deleted key. ErrKeyExists
// alone is not enough: it matches only code 10071 and misses 10164.
func isConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// notFoundError is a missing key: it wraps ErrNotFound and JetStream's own
// error (errors.Is finds both), while its text names only what is missing.
// "nats: key not found" after it would tell a user of `nylon get` or the
// admin API nothing but how the registry stores keys.
type notFoundError struct {
	what  string // "function[x]", "function[x] version 3"
	note  string // after the text, e.g. " (not retained)"
	cause error
}

func (e *notFoundError) Error() string   { return e.what + ": " + ErrNotFound.Error() + e.note }
func (e *notFoundError) Unwrap() []error { return []error{ErrNotFound, e.cause} }

// isKeyNotFound reports whether a KV read found no live value.
func isKeyNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}
