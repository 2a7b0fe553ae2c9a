package events

import (
	"errors"
	"fmt"
)

var (
	// ErrVersionConflict is matched (errors.Is) by every *VersionConflictError.
	ErrVersionConflict = errors.New("keel events: version conflict")
	// ErrStreamDeleted is returned by appends to and reads of a tombstoned
	// stream.
	ErrStreamDeleted = errors.New("keel events: stream deleted")
	// ErrStreamNotFound is returned by reads of a stream that has no events.
	ErrStreamNotFound = errors.New("keel events: stream not found")
	// ErrDuplicateEvent is returned when an event id is already stored in
	// another stream or at another place in this one, so the append is not a
	// plain retry of an earlier one.
	ErrDuplicateEvent = errors.New("keel events: duplicate event id")
	// ErrInvalidArgument is matched by every error about bad input (an empty
	// stream id, an invalid expected version, data that is not JSON …);
	// nothing is written when it is returned.
	ErrInvalidArgument = errors.New("keel events: invalid argument")
	// ErrNoSnapshot is returned by LoadSnapshot when the stream has none.
	ErrNoSnapshot = errors.New("keel events: no snapshot")
	// ErrClosed is returned by every write through a Store after Close,
	// before anything is sent.
	ErrClosed = errors.New("keel events: store closed")
	// ErrSubscriptionNotFound is returned for a subscription name that has
	// never run.
	ErrSubscriptionNotFound = errors.New("keel events: subscription not found")
	// ErrStarted is returned by Start on a store's sequencer or a
	// subscription that runs already.
	ErrStarted = errors.New("keel events: already started")
)

// VersionConflictError reports an append (or tombstone) whose expected
// version did not hold. Nothing was written.
type VersionConflictError struct {
	StreamID string
	Expected ExpectedVersion
	// Actual is the stream's version when the append ran; 0 when the stream
	// did not exist.
	Actual int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("keel events: version conflict on stream %q: expected %s, actual version %d",
		e.StreamID, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}
