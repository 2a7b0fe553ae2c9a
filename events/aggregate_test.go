package events_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

type account struct {
	Balance int64
	Ops     int64
}

type amount struct{ Amount int64 }

func applyAccount(a account, e events.RecordedEvent) (account, error) {
	var m amount
	if err := e.Decode(&m); err != nil {
		return a, err
	}
	switch e.Type {
	case "Deposited":
		a.Balance += m.Amount
	case "Withdrawn":
		a.Balance -= m.Amount
	default:
		return a, fmt.Errorf("unknown event %s", e.Type)
	}
	a.Ops++
	return a, nil
}

var errOverdraft = errors.New("overdraft")

func move(delta int64) func(account) ([]events.EventData, error) {
	return func(a account) ([]events.EventData, error) {
		if delta >= 0 {
			e, err := events.NewEvent("Deposited", amount{delta})
			return []events.EventData{e}, err
		}
		if a.Balance+delta < 0 {
			return nil, errOverdraft
		}
		e, err := events.NewEvent("Withdrawn", amount{-delta})
		return []events.EventData{e}, err
	}
}

// replay folds events from scratch, the reference every load must match.
func replay(t *testing.T, evs []events.RecordedEvent) account {
	t.Helper()
	var a account
	for _, e := range evs {
		var err error
		if a, err = applyAccount(a, e); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// The aggregate decides from its current state and appends with the version
// it loaded; loads from a snapshot and point-in-time loads equal a full
// replay, and the snapshot alone carries the state once the stream is
// truncated before it.
func TestAggregateSnapshotsAndPointInTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	agg := events.Aggregate[account]{Store: store, Apply: applyAccount, SnapshotEvery: 5}
	const stream = "account-1"
	for i := range 23 {
		delta := int64(i*7%13) - 4
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, _, err := agg.Execute(ctx, tx, stream, move(delta))
			return err
		})
		if err != nil && !errors.Is(err, errOverdraft) {
			t.Fatal(err)
		}
	}
	all, err := store.ReadStream(ctx, pool, stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := store.LoadSnapshot(ctx, pool, stream)
	if err != nil {
		t.Fatal(err)
	}
	last := int64(len(all))
	if snap.Version != last/5*5 {
		t.Errorf("snapshot at version %d, want %d", snap.Version, last/5*5)
	}
	state, version, err := agg.Load(ctx, pool, stream)
	if err != nil {
		t.Fatal(err)
	}
	if want := replay(t, all); state != want || version != last {
		t.Errorf("loaded %+v at %d, full replay gives %+v at %d", state, version, want, last)
	}
	for v := int64(1); v <= last; v++ {
		want := replay(t, all[:v])
		byVersion, at, err := agg.LoadAt(ctx, pool, stream, &events.ReadOpts{UntilVersion: v})
		if err != nil || byVersion != want || at != v {
			t.Errorf("at version %d: %+v at %d (%v), replay gives %+v", v, byVersion, at, err, want)
		}
		byTime, at, err := agg.LoadAt(ctx, pool, stream, &events.ReadOpts{UntilTime: all[v-1].RecordedAt})
		if err != nil || byTime != want || at != v {
			t.Errorf("at the time of version %d: %+v at %d (%v), replay gives %+v", v, byTime, at, err, want)
		}
	}
	if err := store.TruncateBefore(ctx, pool, stream, snap.Version+1); err != nil {
		t.Fatal(err)
	}
	afterTruncate, _, err := agg.Load(ctx, pool, stream)
	if err != nil || afterTruncate != state {
		t.Errorf("after truncating before the snapshot: %+v (%v), want %+v", afterTruncate, err, state)
	}
	fresh, version, err := agg.Load(ctx, pool, "account-none")
	if err != nil || fresh != (account{}) || version != 0 {
		t.Errorf("missing stream loads %+v at %d (%v)", fresh, version, err)
	}
}

// Two aggregates that loaded the same version race: one append wins, the
// other gets the version conflict.
func TestAggregateConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	agg := events.Aggregate[account]{Store: store, Apply: applyAccount}
	if _, _, err := agg.Execute(ctx, pool, "account-2", move(10)); err != nil {
		t.Fatal(err)
	}
	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = txA.Rollback(ctx) }()
	if _, _, err := agg.Execute(ctx, txA, "account-2", move(-5)); err != nil {
		t.Fatal(err)
	}
	stale := func(a account) ([]events.EventData, error) {
		// Decides from the state before txA's withdrawal commits.
		if err := txA.Commit(ctx); err != nil {
			return nil, err
		}
		return move(-8)(a)
	}
	_, _, err = agg.Execute(ctx, pool, "account-2", stale)
	var conflict *events.VersionConflictError
	if !errors.As(err, &conflict) || conflict.Actual != 2 || conflict.Expected != events.Exactly(1) {
		t.Fatalf("stale decision: %v, want a conflict expecting 1 at actual 2", err)
	}
	state, version, err := agg.Load(ctx, pool, "account-2")
	if err != nil || state.Balance != 5 || version != 2 {
		t.Errorf("after the race: %+v at %d (%v)", state, version, err)
	}
}

// Snapshots are refused for versions a stream does not have.
func TestSnapshotBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	appendTx(ctx, t, store, pool, "snap-1", events.NoStream, ev("E", 1))
	for _, v := range []int64{0, 2} {
		if err := store.SaveSnapshot(ctx, pool, "snap-1", v, account{}); !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("snapshot at version %d: %v", v, err)
		}
	}
	if err := store.SaveSnapshot(ctx, pool, "snap-2", 1, account{}); !errors.Is(err, events.ErrStreamNotFound) {
		t.Errorf("snapshot of a missing stream: %v", err)
	}
	if _, err := store.LoadSnapshot(ctx, pool, "snap-1"); !errors.Is(err, events.ErrNoSnapshot) {
		t.Errorf("load without a snapshot: %v", err)
	}
}
