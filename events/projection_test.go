package events_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// The tests' own read model, as an application would write it: keel's
// schema is not involved, so these statements are the test's, not sqlc's.
const (
	// createReadModel makes seen (every handled event, once, in handling
	// order) and totals (per stream: events, last version, sum of data.n).
	createReadModel = `
CREATE TABLE public.seen (
    event_id uuid PRIMARY KEY,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    position bigint NOT NULL UNIQUE,
    handled bigserial NOT NULL
);
CREATE TABLE public.totals (
    stream_id text PRIMARY KEY,
    events bigint NOT NULL,
    last_version bigint NOT NULL,
    total bigint NOT NULL
)`
	insertSeen = `INSERT INTO public.seen (event_id, stream_id, version, position) VALUES ($1, $2, $3, $4)`
	// upsertTotal applies one event; in order, events equals last_version.
	upsertTotal = `
INSERT INTO public.totals AS t (stream_id, events, last_version, total)
VALUES ($1, 1, $2, $3)
ON CONFLICT (stream_id) DO UPDATE
SET events = t.events + 1, last_version = excluded.last_version, total = t.total + excluded.total
RETURNING events, last_version`
	selectSeen   = `SELECT stream_id, version, position FROM public.seen ORDER BY handled`
	selectTotals = `SELECT stream_id, events, last_version, total FROM public.totals ORDER BY stream_id`
	countSeen    = `SELECT count(*) FROM public.seen`
)

// project is a subscription handler that writes the read model in the
// subscription's transaction; an event out of order or seen twice fails it.
func project(ctx context.Context, tx pgx.Tx, ev events.RecordedEvent) error {
	if _, err := tx.Exec(ctx, insertSeen, ev.ID, ev.StreamID, ev.Version, ev.Position); err != nil {
		return err
	}
	var data struct{ N int64 }
	if err := ev.Decode(&data); err != nil {
		return err
	}
	var count, last int64
	if err := tx.QueryRow(ctx, upsertTotal, ev.StreamID, ev.Version, data.N).Scan(&count, &last); err != nil {
		return err
	}
	if count != last {
		return fmt.Errorf("%s@%d arrived out of order", ev.StreamID, ev.Version)
	}
	return nil
}

type total struct {
	Stream              string
	Events, Last, Total int64
}

// rebuild folds the whole feed from scratch, as the projection should.
func rebuild(ctx context.Context, t *testing.T, store *events.Store, pool *pgxpool.Pool) []total {
	t.Helper()
	by := map[string]*total{}
	var order []string
	for after := int64(0); ; {
		evs, err := store.ReadAll(ctx, pool, &events.FeedOpts{After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			var data struct{ N int64 }
			if err := e.Decode(&data); err != nil {
				t.Fatal(err)
			}
			tt := by[e.StreamID]
			if tt == nil {
				tt = &total{Stream: e.StreamID}
				by[e.StreamID] = tt
				order = append(order, e.StreamID)
			}
			tt.Events++
			tt.Last = e.Version
			tt.Total += data.N
		}
		after = evs[len(evs)-1].Position
	}
	out := make([]total, 0, len(order))
	for _, s := range sortedStrings(order) {
		out = append(out, *by[s])
	}
	return out
}

func readTotals(ctx context.Context, t *testing.T, pool *pgxpool.Pool) []total {
	t.Helper()
	rows, err := pool.Query(ctx, selectTotals)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (total, error) {
		var tt total
		err := r.Scan(&tt.Stream, &tt.Events, &tt.Last, &tt.Total)
		return tt, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func seenCount(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, countSeen).Scan(&n)
	return n, err
}

// checkSeen asserts that seen holds every event once, in gap-free position
// order, with each stream in version order.
func checkSeen(ctx context.Context, t *testing.T, pool *pgxpool.Pool, want int64) {
	t.Helper()
	rows, err := pool.Query(ctx, selectSeen)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	last := map[string]int64{}
	var n int64
	for rows.Next() {
		var stream string
		var version, position int64
		if err := rows.Scan(&stream, &version, &position); err != nil {
			t.Fatal(err)
		}
		n++
		if position != n {
			t.Fatalf("handled event %d has position %d: the feed skipped or reordered", n, position)
		}
		if version != last[stream]+1 {
			t.Fatalf("%s@%d handled after %s@%d", stream, version, stream, last[stream])
		}
		last[stream] = version
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("handled %d events, want %d", n, want)
	}
}
