package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// Message is one message in the outbox.
type Message struct {
	// ID identifies the message. Zero means a new UUIDv7. Enqueueing an ID
	// that is already in the outbox stores it once, so a caller's own id makes
	// enqueueing idempotent.
	ID uuid.UUID
	// Topic is the destination the Publisher sends the message to. Required,
	// at most 255 bytes.
	Topic string
	// Key orders messages: a message is not published while an earlier one
	// with the same key is undelivered (in flight or waiting to retry).
	// Empty means no order: such messages flow in parallel. At most 1024
	// bytes.
	Key string
	// Type names the message for consumers. Optional, at most 255 bytes.
	Type string
	// Payload is the body, any bytes. Required (it may be empty, but not
	// nil).
	Payload []byte
	// Headers travel with the message. Optional. Names must not be empty.
	// keel adds the trace context of the Enqueue (see keeltype.Operation's
	// Carrier) to the stored headers; a header set here is kept as it is.
	Headers map[string]string
	// NotBefore holds the message back until then. Zero means now.
	NotBefore time.Time
}

// Delivery is a message as a relay hands it to a Publisher.
type Delivery struct {
	Message
	// Attempt counts publish attempts, from 1.
	Attempt int
	// EnqueuedAt is when the message was enqueued.
	EnqueuedAt time.Time
}

// ErrInvalidMessage is returned, wrapped in an *InvalidMessageError, when a
// message cannot be enqueued. Nothing is written.
var ErrInvalidMessage = errors.New("keel outbox: invalid message")

// InvalidMessageError says which message is invalid and why.
type InvalidMessageError struct {
	Index  int    // position in the Enqueue call
	Reason string // the field, what is wrong with it and the limit
	Err    error  // the check that failed
}

func (e *InvalidMessageError) Error() string {
	return fmt.Sprintf("keel outbox: message %d: %s", e.Index, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidMessage) true.
func (e *InvalidMessageError) Is(target error) bool { return target == ErrInvalidMessage }

// Unwrap returns the failed check.
func (e *InvalidMessageError) Unwrap() error { return e.Err }

// timestamp is a query's optional clock: nil means the database's now().
func timestamp(t *time.Time) pgtype.Timestamptz {
	if t == nil {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: *t, Valid: true}
}

func decodeHeaders(raw []byte) (map[string]string, error) {
	var h map[string]string
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("keel outbox: headers: %w", err)
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}
