package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/carrier"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/keeltype"
)

// AppendResult is what an Append wrote.
type AppendResult struct {
	StreamID string
	// Version is the stream's version after the append: the version of its
	// last event, and the Exactly value for the next append.
	Version int64
	// Events are the appended events, with their ids and versions. Their
	// Position is 0: the sequencer stamps it after commit.
	Events []RecordedEvent
	// Duplicate reports that every event was already stored by an earlier
	// append with the same ids, and nothing was written.
	Duplicate bool
}

// Append writes events to the end of a stream in tx, if the stream's version
// matches expected. On a mismatch it returns a *VersionConflictError
// (errors.Is ErrVersionConflict) and writes nothing. Bad input returns an
// error matching ErrInvalidArgument before anything is written.
//
// Pass the caller's pgx.Tx: the events, the inline projections and the
// wake-up notification then commit with the rest of the transaction. Append
// never begins, commits or rolls back tx.
//
// Events whose ID the caller set and that are already stored, in this stream,
// in this order, make the append a no-op that reports Duplicate. An ID stored
// elsewhere is ErrDuplicateEvent. Two concurrent appends of one new ID: one
// wins, the other fails with ErrDuplicateEvent and its transaction is
// aborted; retrying it reports Duplicate.
func (s *Store) Append(ctx context.Context, tx keeltype.DBTX, streamID string, expected ExpectedVersion, evs ...EventData) (AppendResult, error) {
	if err := s.writable(tx); err != nil {
		return AppendResult{}, err
	}
	params, ids, callerIDs, err := appendParams(streamID, expected, evs)
	if err != nil {
		return AppendResult{}, err
	}
	op := keeltype.Operation{Kind: keeltype.OpEventsAppend, Name: streamID, Count: len(evs), Carrier: map[string]string{}}
	ctx, end := s.cfg.Hook.Start(ctx, op)
	if entries := carrier.Clean(op.Carrier); entries != nil {
		for i, meta := range params.Metadatas {
			params.Metadatas[i] = string(entries.Metadata(json.RawMessage(meta)))
		}
	}
	res, err := s.appendEvents(ctx, tx, streamID, expected, evs, params, ids, callerIDs)
	end(keeltype.Outcome{Err: err})
	return res, err
}

func (s *Store) appendEvents(ctx context.Context, tx keeltype.DBTX, streamID string, expected ExpectedVersion, evs []EventData,
	params db.AppendEventsParams, ids []uuid.UUID, callerIDs []uuid.UUID) (AppendResult, error) {
	q := db.New(tx)
	if len(callerIDs) > 0 {
		res, done, err := s.alreadyAppended(ctx, q, streamID, callerIDs, ids)
		if done || err != nil {
			return res, err
		}
	}
	rows, err := appendRows(ctx, q, params)
	if len(rows) == 0 && err == nil && expected.kind == kindAny {
		// A concurrent append created the stream between this statement's
		// update and insert; with Any that is no conflict, so go again.
		rows, err = appendRows(ctx, q, params)
	}
	if err != nil {
		if isUniqueViolation(err, "events_event_id_key") {
			return AppendResult{}, fmt.Errorf("%w: an event with one of these ids was appended concurrently to %q", ErrDuplicateEvent, streamID)
		}
		return AppendResult{}, fmt.Errorf("keel events: appending to %q: %w", streamID, err)
	}
	if len(rows) == 0 {
		return AppendResult{}, s.refused(ctx, q, streamID, expected)
	}
	res := AppendResult{StreamID: streamID, Events: make([]RecordedEvent, len(rows))}
	for i, r := range rows {
		e := evs[i]
		res.Events[i] = RecordedEvent{
			ID: ids[i], StreamID: streamID, Version: r.Version, Type: e.Type,
			Data: e.Data, Metadata: json.RawMessage(params.Metadatas[i]), CausationID: e.CausationID,
			CorrelationID: e.CorrelationID, RecordedAt: r.RecordedAt.Time,
		}
	}
	res.Version = res.Events[len(res.Events)-1].Version
	for _, p := range s.cfg.InlineProjections {
		if err := p(ctx, tx, res.Events); err != nil {
			return AppendResult{}, fmt.Errorf("keel events: inline projection on %q: %w", streamID, err)
		}
	}
	if !s.cfg.DisableNotify {
		// A Close since the check above leaves this append without its
		// wake-up, not failed: its rows are written, and subscriptions poll.
		if err := s.debounce.Notify(ctx, tx, channel, ""); err != nil && !errors.Is(err, notify.ErrClosed) {
			return AppendResult{}, fmt.Errorf("keel events: notifying subscribers: %w", err)
		}
	}
	return res, nil
}

// appendRows runs the append statement: the one for a single event when
// there is one, the one taking arrays otherwise.
func appendRows(ctx context.Context, q *db.Queries, p db.AppendEventsParams) ([]db.AppendEventsRow, error) {
	if p.Count != 1 {
		return q.AppendEvents(ctx, p)
	}
	row, err := q.AppendEvent(ctx, db.AppendEventParams{
		StreamID: p.StreamID, Kind: p.Kind, Expected: p.Expected,
		EventID: p.EventIds[0], Type: p.Types[0], Data: p.Datas[0], Metadata: p.Metadatas[0],
		CausationID: p.CausationIds[0], CorrelationID: p.CorrelationIds[0],
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []db.AppendEventsRow{db.AppendEventsRow(row)}, nil
}

// appendParams checks the input and builds the append query's arguments,
// giving events without an id a new UUIDv7. It also returns every event's id
// and the ids the caller chose.
func appendParams(streamID string, expected ExpectedVersion, evs []EventData) (p db.AppendEventsParams, ids, callerIDs []uuid.UUID, err error) {
	if err := checkStreamID(streamID); err != nil {
		return p, nil, nil, err
	}
	if err := expected.validate(); err != nil {
		return p, nil, nil, err
	}
	if len(evs) == 0 {
		return p, nil, nil, invalid("no events to append to %q", streamID)
	}
	p = db.AppendEventsParams{
		StreamID:       streamID,
		Count:          int64(len(evs)),
		Kind:           expected.kind,
		Expected:       expected.version,
		EventIds:       make([]string, len(evs)),
		Types:          make([]string, len(evs)),
		Datas:          make([]string, len(evs)),
		Metadatas:      make([]string, len(evs)),
		CausationIds:   make([]string, len(evs)),
		CorrelationIds: make([]string, len(evs)),
	}
	ids = make([]uuid.UUID, len(evs))
	for i, e := range evs {
		meta, err := e.check(i)
		if err != nil {
			return p, nil, nil, fmt.Errorf("%w: appending to %q: %w", ErrInvalidArgument, streamID, err)
		}
		id := e.ID
		if id == uuid.Nil {
			if id, err = uuid.NewV7(); err != nil {
				return p, nil, nil, fmt.Errorf("keel events: event id: %w", err)
			}
		} else {
			callerIDs = append(callerIDs, id)
		}
		ids[i] = id
		p.EventIds[i], p.Types[i], p.Datas[i], p.Metadatas[i] = id.String(), e.Type, string(e.Data), string(meta)
		p.CausationIds[i], p.CorrelationIds[i] = e.CausationID, e.CorrelationID
	}
	// New UUIDv7s never repeat, so only the caller's ids can.
	if dup := firstDuplicate(callerIDs); dup != uuid.Nil {
		return p, nil, nil, invalid("event id %s appears twice in one append", dup)
	}
	return p, ids, callerIDs, nil
}

func firstDuplicate(ids []uuid.UUID) uuid.UUID {
	seen := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return id
		}
		seen[id] = true
	}
	return uuid.Nil
}

// alreadyAppended looks the caller's ids up. When all events are stored in
// this stream, consecutively and in this order, the append is a retry and
// done is true. Any other overlap is ErrDuplicateEvent.
func (s *Store) alreadyAppended(ctx context.Context, q *db.Queries, streamID string, callerIDs, allIDs []uuid.UUID) (res AppendResult, done bool, err error) {
	found, err := q.EventsByID(ctx, callerIDs)
	if err != nil {
		return res, false, fmt.Errorf("keel events: looking up event ids: %w", err)
	}
	if len(found) == 0 {
		return res, false, nil
	}
	if len(found) != len(allIDs) {
		return res, false, fmt.Errorf("%w: %s is already in stream %q", ErrDuplicateEvent, found[0].EventID, found[0].StreamID)
	}
	res = AppendResult{StreamID: streamID, Duplicate: true, Events: make([]RecordedEvent, len(found))}
	for i, f := range found {
		if f.StreamID != streamID || f.EventID != allIDs[i] || (i > 0 && f.Version != found[i-1].Version+1) {
			return AppendResult{}, false, fmt.Errorf("%w: %s is already in stream %q at version %d", ErrDuplicateEvent, f.EventID, f.StreamID, f.Version)
		}
		res.Events[i] = RecordedEvent{ID: f.EventID, StreamID: f.StreamID, Version: f.Version, RecordedAt: f.RecordedAt.Time}
	}
	res.Version = found[len(found)-1].Version
	return res, true, nil
}

// refused explains an append that wrote nothing.
func (s *Store) refused(ctx context.Context, q *db.Queries, streamID string, expected ExpectedVersion) error {
	st, err := q.GetStream(ctx, streamID)
	var actual int64
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("keel events: appending to %q: %w", streamID, err)
	case st.DeletedAt.Valid:
		return fmt.Errorf("%w: %q", ErrStreamDeleted, streamID)
	default:
		actual = st.Version
	}
	s.cfg.Logger.DebugContext(ctx, "keel events: version conflict", "stream", streamID, "expected", expected.String(), "actual", actual)
	return &VersionConflictError{StreamID: streamID, Expected: expected, Actual: actual}
}
