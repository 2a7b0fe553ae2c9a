package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// Tombstone soft-deletes a stream if its version matches expected: its
// events stay in the table but every read (stream, category, feed and the
// subscriptions that have not reached them) leaves them out, and appends to
// it fail with ErrStreamDeleted. A mismatch is a *VersionConflictError.
func (s *Store) Tombstone(ctx context.Context, tx keeltype.DBTX, streamID string, expected ExpectedVersion) error {
	if err := s.writable(tx); err != nil {
		return err
	}
	if err := checkStreamID(streamID); err != nil {
		return err
	}
	if err := expected.validate(); err != nil {
		return err
	}
	if expected.kind == kindNoStream {
		return invalid("cannot tombstone %q expecting no stream", streamID)
	}
	q := db.New(tx)
	_, err := q.TombstoneStream(ctx, db.TombstoneStreamParams{StreamID: streamID, Kind: expected.kind, Expected: expected.version})
	if errors.Is(err, pgx.ErrNoRows) {
		return s.refused(ctx, q, streamID, expected)
	}
	if err != nil {
		return fmt.Errorf("keel events: tombstoning %q: %w", streamID, err)
	}
	s.cfg.Logger.InfoContext(ctx, "keel events: stream tombstoned", "stream", streamID)
	return nil
}

// TruncateBefore hides a stream's events with a version below before from
// every read, e.g. once a snapshot holds their effect. Versions go on from
// where they were; truncating never un-hides events.
func (s *Store) TruncateBefore(ctx context.Context, tx keeltype.DBTX, streamID string, before int64) error {
	if err := s.writable(tx); err != nil {
		return err
	}
	if err := checkStreamID(streamID); err != nil {
		return err
	}
	if before < 1 {
		return invalid("truncate %q before version %d: versions start at 1", streamID, before)
	}
	q := db.New(tx)
	_, err := q.TruncateStreamBefore(ctx, db.TruncateStreamBeforeParams{StreamID: streamID, Before: before})
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = liveStream(ctx, q, streamID)
		return err
	}
	if err != nil {
		return fmt.Errorf("keel events: truncating %q: %w", streamID, err)
	}
	return nil
}
