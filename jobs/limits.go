package jobs

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/internal/validate"
)

// maxErrorText bounds the error text, and the panic stack, that one failed
// attempt keeps in a job's errors; a job keeps one entry per attempt.
const maxErrorText = 16 << 10

// checkKind and checkQueue are the checks of the names a job is stored and
// found by, for inserts, workers, configuration and control calls alike.
func checkKind(kind string) error { return validate.Name("kind", kind, validate.MaxName) }

func checkQueue(queue string) error { return validate.Name("queue", queue, validate.MaxQueue) }

// invalid wraps what internal/validate refused in ErrInvalidOptions; it
// returns nil for nil.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
}

// checkDBTX refuses a nil tx, whose first statement would panic.
func checkDBTX(tx keel.DBTX) error {
	if isNil(tx) {
		return fmt.Errorf("%w: nil DBTX", ErrInvalidOptions)
	}
	return nil
}

// isNil reports whether v is nil or a nil pointer, whose methods may panic.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// storableText makes text that keel writes from an error storable. Error
// text is not input a caller can be refused for, and an attempt's outcome
// must always be written, so what Postgres cannot hold — a NUL byte, bytes
// that are not UTF-8 — becomes U+FFFD, and text longer than maxErrorText
// is cut at a rune boundary with a note saying how much was cut.
func storableText(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= maxErrorText {
		return s
	}
	end := maxErrorText - 40 // room for the note
	for !utf8.RuneStart(s[end]) {
		end--
	}
	return fmt.Sprintf("%s … (%d bytes cut)", s[:end], len(s)-end)
}
