package migrations_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// Events stored before the feed moved into keel.feed (migration 7) keep
// their positions, the ones not yet stamped get the next ones, and rolling
// back to 6 puts every position back on its event.
func TestEventsFeedMigrationKeepsPositions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Open(t, testdb.NewEmptyURL(t))
	m := newMigrator(t, pool)
	if _, err := m.UpTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	// As migration 6 left them: three stamped events and one the sequencer
	// had not reached.
	if _, err := pool.Exec(ctx, `
		INSERT INTO keel.streams (stream_id, version) VALUES ('s-1', 3), ('s-2', 1);
		INSERT INTO keel.events (event_id, stream_id, version, type, data, position) VALUES
			(gen_random_uuid(), 's-1', 1, 'E', '{}', 1),
			(gen_random_uuid(), 's-2', 1, 'E', '{}', 2),
			(gen_random_uuid(), 's-1', 2, 'E', '{}', 3),
			(gen_random_uuid(), 's-1', 3, 'E', '{}', NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.Append(ctx, tx, "s-1", events.Exactly(3), events.EventData{Type: "E", Data: []byte(`{}`)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"1:s-1@1", "2:s-2@1", "3:s-1@2", "4:s-1@3", "5:s-1@4"}
	if got := feed(ctx, t, store, pool); !slices.Equal(got, want) {
		t.Errorf("feed after migrating up: %v, want %v", got, want)
	}

	if _, err := m.DownTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, "SELECT position, stream_id, version FROM keel.events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	var old []string
	for rows.Next() {
		var pos, version int64
		var stream string
		if err := rows.Scan(&pos, &stream, &version); err != nil {
			t.Fatal(err)
		}
		old = append(old, fmt.Sprintf("%d:%s@%d", pos, stream, version))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(old, want) {
		t.Errorf("events after rolling back to 6, in seq order: %v, want %v", old, want)
	}

	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if got := feed(ctx, t, store, pool); !slices.Equal(got, want) {
		t.Errorf("feed after migrating up again: %v, want %v", got, want)
	}
}

func feed(ctx context.Context, t *testing.T, store *events.Store, pool *pgxpool.Pool) []string {
	t.Helper()
	evs, err := store.ReadAll(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%d:%s@%d", e.Position, e.StreamID, e.Version)
	}
	return out
}
