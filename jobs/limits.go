package jobs

import (
	"fmt"
	"reflect"

	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

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
func checkDBTX(tx keeltype.DBTX) error {
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
