package events_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/hooktest"
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

// The hook hears of appends (a conflict as the error of one), of each
// event handled, with the handler running in the context it returned, and
// of subscription lag.
func TestHook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	hook := &hooktest.Recorder{}
	store := newStore(t, pool, events.Config{Hook: hook})
	for i := range 5 {
		appendTx(ctx, t, store, pool, "m-1", events.Any, ev("E", i), ev("E", i))
	}
	if _, err := store.Append(ctx, pool, "m-1", events.NoStream, ev("E", 9)); !errors.Is(err, events.ErrVersionConflict) {
		t.Fatal(err)
	}
	var carried atomic.Int64
	runSub(t, store, events.SubscriptionConfig{Name: "lagging", BatchSize: 4, PollInterval: 20 * time.Millisecond,
		Handler: func(ctx context.Context, _ pgx.Tx, _ events.RecordedEvent) error {
			if hooktest.Carried(ctx, keeltype.OpEventsHandle) {
				carried.Add(1)
			}
			return nil
		}})
	eventually(t, 30*time.Second, "lag reported down to zero", func() (bool, error) {
		lag := hook.Measured(keeltype.MeasureSubscriptionLag)
		return len(lag) > 0 && lag[len(lag)-1].Value == 0, nil
	})
	var appended, conflicts int
	for _, e := range hook.Ended(keeltype.OpEventsAppend) {
		switch {
		case e.Op.Name != "m-1":
			t.Errorf("append to %q", e.Op.Name)
		case e.Outcome.Err == nil:
			appended += e.Op.Count
		case errors.Is(e.Outcome.Err, events.ErrVersionConflict):
			conflicts++
		}
	}
	if appended != 10 || conflicts != 1 {
		t.Errorf("appended %d, conflicts %d; want 10 and 1", appended, conflicts)
	}
	if handled := hook.Ended(keeltype.OpEventsHandle); len(handled) != 10 || carried.Load() != 10 || handled[0].Op.Name != "lagging" {
		t.Errorf("%d events handled, %d with the hook's context; want 10 and 10", len(handled), carried.Load())
	}
	if lag := hook.Measured(keeltype.MeasureSubscriptionLag); lag[0].Value != 6 || lag[0].Age <= 0 || lag[0].Name != "lagging" {
		t.Errorf("first batch of 4 of 10 reported %+v; want a lag of 6 and a positive age", lag[0])
	}
}
