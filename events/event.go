package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
)

// EventData is an event to append.
type EventData struct {
	// ID identifies the event. The zero value gets a new UUIDv7. Appending an
	// event whose ID is already stored at the same place in the same stream
	// is a no-op, so a retried append is safe.
	ID uuid.UUID
	// Type names the event, e.g. "OrderPlaced". Required.
	Type string
	// Data is the event's payload: any JSON value. Required.
	Data json.RawMessage
	// Metadata is the writer's information about the event: a JSON object,
	// or nil for {}. The key keeltype.CarrierKey is where keel keeps the
	// trace context of the append; a value the caller gives under it is
	// stored instead.
	Metadata json.RawMessage
	// CausationID is the id of the message or event that caused this one.
	CausationID string
	// CorrelationID is shared by every message and event of one conversation.
	CorrelationID string
}

// NewEvent returns an EventData of the given type whose Data is v encoded as
// JSON. A string in v that is not UTF-8 or holds NUL is refused with
// ErrInvalidArgument (encoding/json would store U+FFFD in its place).
func NewEvent(eventType string, v any) (EventData, error) {
	b, err := encodeJSON("data", v)
	if err != nil {
		return EventData{}, fmt.Errorf("%w: event %q: %w", ErrInvalidArgument, eventType, err)
	}
	return EventData{Type: eventType, Data: b}, nil
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	ID       uuid.UUID
	StreamID string
	// Version is the event's number in its stream, from 1.
	Version int64
	// Position is the event's place in the global feed, from 1; 0 when the
	// sequencer has not stamped it yet (always so in an inline projection).
	Position      int64
	Type          string
	Data          json.RawMessage
	Metadata      json.RawMessage
	CausationID   string
	CorrelationID string
	RecordedAt    time.Time
}

// Category returns the category of the event's stream.
func (e RecordedEvent) Category() string { return Category(e.StreamID) }

// Decode unmarshals the event's data into v.
func (e RecordedEvent) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("keel events: decoding %s %s@%d: %w", e.Type, e.StreamID, e.Version, err)
	}
	return nil
}

// Category returns the category a stream id belongs to: the part before its
// first '-' ("order-123" belongs to "order"), or the whole id when it has none.
func Category(streamID string) string {
	category, _, _ := strings.Cut(streamID, "-")
	return category
}

// fromEvent converts a stored event row; its Position is 0 until the caller
// sets it.
func fromEvent(r db.KeelEvent) RecordedEvent {
	ev := RecordedEvent{
		ID:         r.EventID,
		StreamID:   r.StreamID,
		Version:    r.Version,
		Type:       r.Type,
		Data:       r.Data,
		Metadata:   r.Metadata,
		RecordedAt: r.RecordedAt.Time,
	}
	if r.CausationID != nil {
		ev.CausationID = *r.CausationID
	}
	if r.CorrelationID != nil {
		ev.CorrelationID = *r.CorrelationID
	}
	return ev
}

// fromFeedRow converts a row of the feed queries, which share one shape.
func fromFeedRow(r db.ReadAllRow) RecordedEvent {
	ev := fromEvent(db.KeelEvent{
		EventID: r.EventID, StreamID: r.StreamID, Version: r.Version, Type: r.Type,
		Data: r.Data, Metadata: r.Metadata, CausationID: r.CausationID,
		CorrelationID: r.CorrelationID, RecordedAt: r.RecordedAt,
	})
	ev.Position = r.Position
	return ev
}

func convert[R any](rows []R, conv func(R) RecordedEvent) []RecordedEvent {
	out := make([]RecordedEvent, len(rows))
	for i, r := range rows {
		out[i] = conv(r)
	}
	return out
}

func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: true}
}
