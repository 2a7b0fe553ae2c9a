package outbox

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// The checks every public write of the package makes before its first
// statement, so that what Postgres would refuse is refused here with a typed
// error and the caller's transaction stays usable.

// ErrInvalidArgument is returned when a call or constructor is given
// something it cannot use: a nil transaction, pool, publisher or handler, a
// time Postgres cannot hold, a RelayConfig out of range. Nothing is written.
var ErrInvalidArgument = errors.New("keel outbox: invalid argument")

// ErrClosed is returned by Enqueue on an Outbox that was closed. Nothing is
// written.
var ErrClosed = errors.New("keel outbox: outbox closed")

// ErrStarted is returned by Start on a relay or an inbox that runs already.
var ErrStarted = errors.New("keel outbox: already started")

func invalidArgument(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, a...))
}

// invalidValue wraps a *validate.Error in ErrInvalidArgument.
func invalidValue(err error) error {
	return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
}

// checkDBTX refuses a nil transaction, also a nil pointer in the interface
// (a *pgxpool.Pool or *pgx.Conn never set).
func checkDBTX(tx keeltype.DBTX) error {
	if isNil(tx) {
		return invalidArgument("the transaction (DBTX) is nil")
	}
	return nil
}

// isNil reports whether v is nil or holds a nil pointer or func.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Func:
		return rv.IsNil()
	}
	return false
}

// validateMessage checks message i of an Enqueue and returns its headers
// encoded for the jsonb column.
func validateMessage(i int, m Message) (string, error) {
	if err := messageFields(m); err != nil {
		return "", &InvalidMessageError{Index: i, Reason: err.Error(), Err: err}
	}
	h, err := encodeHeaders(m.Headers)
	if err != nil {
		return "", &InvalidMessageError{Index: i, Reason: err.Error(), Err: err}
	}
	return h, nil
}

func messageFields(m Message) error {
	if err := validate.Name("topic", m.Topic, validate.MaxName); err != nil {
		return err
	}
	if err := validate.Text("key", m.Key, validate.MaxKey); err != nil {
		return err
	}
	if err := validate.Text("type", m.Type, validate.MaxName); err != nil {
		return err
	}
	if m.Payload == nil {
		return &validate.Error{Field: "payload", Reason: "is nil (use []byte{} for an empty body)"}
	}
	if !m.NotBefore.IsZero() {
		if err := checkTime("not before", m.NotBefore); err != nil {
			return err
		}
	}
	// In name order, so that the same message always fails on the same
	// header.
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		if err := validate.Name(fmt.Sprintf("header name %q", k), k, 0); err != nil {
			return err
		}
		if err := validate.Text(fmt.Sprintf("headers[%q]", k), m.Headers[k], 0); err != nil {
			return err
		}
	}
	return nil
}

func encodeHeaders(h map[string]string) (string, error) {
	if len(h) == 0 {
		return "{}", nil
	}
	b, err := validate.Marshal("headers", h)
	return string(b), err
}

// validateInboxKey checks an inbox record's consumer and message id.
func validateInboxKey(consumer, messageID string) error {
	if err := validate.Name("consumer", consumer, validate.MaxName); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInboxKey, err)
	}
	if err := validate.Name("message id", messageID, validate.MaxKey); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInboxKey, err)
	}
	return nil
}

// Postgres's timestamptz range in Unix seconds: from 4714-11-24 BC up to,
// not including, 294277-01-01. pgx sends a time as microseconds since 2000
// in an int64, which wraps around beyond it, so a time outside would be
// refused by the server or, worse, arrive as another time.
const (
	minUnix = -210866803200
	endUnix = 9224318016000
)

// checkTime refuses a time Postgres's timestamptz cannot hold.
func checkTime(field string, t time.Time) error {
	if s := t.Unix(); s < minUnix || s >= endUnix {
		return &validate.Error{Field: field, Reason: fmt.Sprintf("is %s; Postgres holds times from 4714-11-24 BC to 294276-12-31 AD", t.UTC())}
	}
	return nil
}

// checkClock checks a clock a test moves. The relay adds leases and
// backoffs, up to time.Duration's 292 years, to it.
func checkClock(now *time.Time) error {
	if now == nil {
		return nil
	}
	if err := checkTime("now", *now); err != nil {
		return invalidValue(err)
	}
	if err := checkTime("now plus the longest lease or backoff", now.Add(math.MaxInt64)); err != nil {
		return invalidValue(err)
	}
	return nil
}

// checkRelayConfig refuses what NewRelay cannot apply or store.
func checkRelayConfig(cfg RelayConfig) error {
	if cfg.Name != "" {
		if err := validate.Name("RelayConfig.Name", cfg.Name, validate.MaxName); err != nil {
			return invalidValue(err)
		}
	}
	switch {
	case cfg.BatchSize < 0 || cfg.BatchSize > math.MaxInt32:
		return invalidArgument("RelayConfig.BatchSize is %d; it must be between 0 and %d", cfg.BatchSize, math.MaxInt32)
	case cfg.MaxAttempts < 0 || cfg.MaxAttempts > math.MaxInt32:
		return invalidArgument("RelayConfig.MaxAttempts is %d; it must be between 0 and %d", cfg.MaxAttempts, math.MaxInt32)
	case cfg.Lease < 0:
		return invalidArgument("RelayConfig.Lease is %s; it must not be negative", cfg.Lease)
	case cfg.PollInterval < 0:
		return invalidArgument("RelayConfig.PollInterval is %s; it must not be negative", cfg.PollInterval)
	}
	return nil
}
