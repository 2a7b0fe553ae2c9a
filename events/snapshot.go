package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// Snapshot is a stream's state folded up to a version.
type Snapshot struct {
	StreamID string
	// Version is the version of the last event folded into State.
	Version int64
	State   json.RawMessage
	SavedAt time.Time
}

// SaveSnapshot stores state (encoded as JSON; a json.RawMessage is kept as
// it is) as the stream's snapshot at version, unless a newer one is saved.
// The version must exist in the stream. A state that jsonb cannot store (a
// string that is not UTF-8 or holds NUL, see the package's Limits) is
// refused with ErrInvalidArgument, never stored altered.
func (s *Store) SaveSnapshot(ctx context.Context, tx keeltype.DBTX, streamID string, version int64, state any) error {
	if err := s.writable(tx); err != nil {
		return err
	}
	if err := checkStreamID(streamID); err != nil {
		return err
	}
	if version < 1 {
		return invalid("snapshot of %q at version %d: versions start at 1", streamID, version)
	}
	b, err := encodeJSON("snapshot state", state)
	if err != nil {
		return fmt.Errorf("%w: snapshot of %q: %w", ErrInvalidArgument, streamID, err)
	}
	q := db.New(tx)
	st, err := liveStream(ctx, q, streamID)
	if err != nil {
		return err
	}
	if version > st.Version {
		return invalid("snapshot of %q at version %d: the stream has versions 1 to %d", streamID, version, st.Version)
	}
	if err := q.SaveSnapshot(ctx, db.SaveSnapshotParams{StreamID: streamID, Version: version, State: b}); err != nil {
		return fmt.Errorf("keel events: saving snapshot of %q: %w", streamID, err)
	}
	return nil
}

// LoadSnapshot returns the stream's latest snapshot, or ErrNoSnapshot.
func (s *Store) LoadSnapshot(ctx context.Context, q keeltype.DBTX, streamID string) (Snapshot, error) {
	if err := checkRead(q, streamID); err != nil {
		return Snapshot{}, err
	}
	return loadSnapshot(ctx, db.New(q), streamID, math.MaxInt64)
}

func loadSnapshot(ctx context.Context, q *db.Queries, streamID string, maxVersion int64) (Snapshot, error) {
	r, err := q.LoadSnapshot(ctx, db.LoadSnapshotParams{StreamID: streamID, MaxVersion: maxVersion})
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, fmt.Errorf("%w: %q", ErrNoSnapshot, streamID)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("keel events: loading snapshot of %q: %w", streamID, err)
	}
	return Snapshot{StreamID: streamID, Version: r.Version, State: r.State, SavedAt: r.SavedAt.Time}, nil
}
