package events

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// This file holds every check of what the store is given. Each public call
// makes its checks before its first statement, so what Postgres would refuse
// (a NUL byte, invalid UTF-8, a value too long for its index, JSON that jsonb
// cannot hold) comes back as ErrInvalidArgument and the caller's transaction
// stays usable.

// refuse wraps a *validate.Error in ErrInvalidArgument; nil stays nil.
func refuse(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
}

// checkStreamID checks a stream id, for writes and reads alike: a stream
// with any other id cannot exist.
func checkStreamID(streamID string) error {
	return refuse(validate.Name("stream id", streamID, validate.MaxKey))
}

// checkCategory checks a category to read or subscribe to. A category is
// the part of a stream id before its first '-', so one holding '-' would
// match nothing.
func checkCategory(field, category string) error {
	if err := validate.Name(field, category, validate.MaxKey); err != nil {
		return refuse(err)
	}
	if strings.Contains(category, "-") {
		return invalid("%s %q holds '-', which ends a category: it would match no stream", field, category)
	}
	return nil
}

// checkSubscriptionName checks the name of a subscription.
func checkSubscriptionName(name string) error {
	return refuse(validate.Name("subscription name", name, validate.MaxName))
}

// checkRead checks what a read of one stream is given.
func checkRead(q keeltype.DBTX, streamID string) error {
	if err := checkDBTX(q); err != nil {
		return err
	}
	return checkStreamID(streamID)
}

// check validates what a subscription's row will hold, before its defaults.
func (c SubscriptionConfig) check() error {
	if err := checkSubscriptionName(c.Name); err != nil {
		return err
	}
	if c.Category != "" {
		if err := checkCategory("subscription category", c.Category); err != nil {
			return err
		}
	}
	if err := validate.Text("subscription consumer id", c.ConsumerID, 0); err != nil {
		return refuse(err)
	}
	if c.Handler == nil {
		return invalid("subscription %q has no handler", c.Name)
	}
	if c.MaxAttempts > math.MaxInt32 {
		return invalid("subscription %q: MaxAttempts %d is more than %d", c.Name, c.MaxAttempts, math.MaxInt32)
	}
	return nil
}

// checkDBTX refuses a nil DBTX, a nil pointer in a DBTX included (a nil
// *pgxpool.Pool, say), which would otherwise panic on the first statement.
func checkDBTX(q keeltype.DBTX) error {
	if q == nil {
		return invalid("the DBTX (transaction, connection or pool) is nil")
	}
	if v := reflect.ValueOf(q); v.Kind() == reflect.Pointer && v.IsNil() {
		return invalid("the DBTX (transaction, connection or pool) is a nil %T", q)
	}
	return nil
}

// check validates the i-th event of an append and returns its metadata as
// stored ({} when it has none). Its error is a *validate.Error.
func (e EventData) check(i int) (json.RawMessage, error) {
	field := func(name string) string { return fmt.Sprintf("events[%d].%s", i, name) }
	if err := validate.Name(field("type"), e.Type, validate.MaxName); err != nil {
		return nil, err
	}
	if err := validate.Text(field("causation id"), e.CausationID, validate.MaxKey); err != nil {
		return nil, err
	}
	if err := validate.Text(field("correlation id"), e.CorrelationID, validate.MaxKey); err != nil {
		return nil, err
	}
	if err := validate.JSON(field("data"), e.Data); err != nil {
		return nil, err
	}
	meta := e.Metadata
	if meta == nil {
		return json.RawMessage(`{}`), nil
	}
	if err := validate.JSON(field("metadata"), meta); err != nil {
		return nil, err
	}
	if !isJSONObject(meta) {
		return nil, &validate.Error{Field: field("metadata"), Reason: "is not a JSON object"}
	}
	return meta, nil
}

func isJSONObject(b json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// encodeJSON encodes a Go value (event data, a snapshot's state) for jsonb,
// refusing strings that are not UTF-8 or hold NUL rather than storing U+FFFD
// in their place. Its error is a *validate.Error naming field.
func encodeJSON(field string, v any) (json.RawMessage, error) {
	return validate.Marshal(field, v)
}
