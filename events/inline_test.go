package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
)

// The test's inline read model: one row per stream with its event count.
const (
	createCounts = `CREATE TABLE public.counts (stream_id text PRIMARY KEY, events bigint NOT NULL)`
	upsertCount  = `
INSERT INTO public.counts AS c (stream_id, events) VALUES ($1, $2)
ON CONFLICT (stream_id) DO UPDATE SET events = c.events + excluded.events`
	selectCount = `SELECT COALESCE((SELECT events FROM public.counts WHERE stream_id = $1), 0)`
)

// Inline projections write in the appending transaction: they commit and
// roll back with the events, and their error fails the append.
func TestInlineProjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	if _, err := pool.Exec(ctx, createCounts); err != nil {
		t.Fatal(err)
	}
	errRefused := errors.New("refused by projection")
	store := newStore(t, pool, events.Config{InlineProjections: []events.InlineProjection{
		func(ctx context.Context, tx keeltype.DBTX, evs []events.RecordedEvent) error {
			for _, e := range evs {
				if e.Type == "Refused" {
					return errRefused
				}
			}
			_, err := tx.Exec(ctx, upsertCount, evs[0].StreamID, len(evs))
			return err
		},
	}})
	count := func() int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(ctx, selectCount, "inline-1").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	appendTx(ctx, t, store, pool, "inline-1", events.Any, ev("E", 1), ev("E", 2))
	if n := count(); n != 2 {
		t.Errorf("after a committed append of 2 the projection counts %d", n)
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := store.Append(ctx, tx, "inline-1", events.Any, ev("E", 3)); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Errorf("a rolled-back append changed the projection to %d", n)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.Append(ctx, tx, "inline-1", events.Any, ev("E", 4), ev("Refused", 5))
		return err
	})
	if !errors.Is(err, errRefused) {
		t.Errorf("a failing projection: %v", err)
	}
	info, err := store.Stream(ctx, pool, "inline-1")
	if err != nil || info.Version != 2 || count() != 2 {
		t.Errorf("after the refused append: version %d, count %d (%v)", info.Version, count(), err)
	}
}

// recorder is a Metrics hook that remembers what it was told.
type recorder struct {
	mu        sync.Mutex
	appended  map[string]int
	conflicts map[string]int
	lag       []int64
	age       []time.Duration
}

func (r *recorder) Appended(stream string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.appended[stream] += n
}

func (r *recorder) Conflicted(stream string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conflicts[stream]++
}

func (r *recorder) Outage(keeltype.Outage) {}

func (r *recorder) SubscriptionLag(_ string, events int64, age time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lag = append(r.lag, events)
	r.age = append(r.age, age)
}

// The metrics hook hears of appends, conflicts and subscription lag.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	rec := &recorder{appended: map[string]int{}, conflicts: map[string]int{}}
	store := newStore(t, pool, events.Config{Metrics: rec})
	for i := range 5 {
		appendTx(ctx, t, store, pool, "m-1", events.Any, ev("E", i), ev("E", i))
	}
	if _, err := store.Append(ctx, pool, "m-1", events.NoStream, ev("E", 9)); !errors.Is(err, events.ErrVersionConflict) {
		t.Fatal(err)
	}
	runSub(t, store, events.SubscriptionConfig{Name: "lagging", BatchSize: 4, PollInterval: 20 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil }})
	eventually(t, 30*time.Second, "lag reported down to zero", func() (bool, error) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.lag) > 0 && rec.lag[len(rec.lag)-1] == 0, nil
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.appended["m-1"] != 10 || rec.conflicts["m-1"] != 1 {
		t.Errorf("appended %v, conflicts %v; want 10 and 1", rec.appended, rec.conflicts)
	}
	if rec.lag[0] != 6 || rec.age[0] <= 0 {
		t.Errorf("first batch of 4 of 10 reported lag %d events, %v; want 6 and a positive age", rec.lag[0], rec.age[0])
	}
}
