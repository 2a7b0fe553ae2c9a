package events_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// Events are invisible to the feed until stamped, and stamped in the order
// they became visible: a transaction that inserted first but commits last
// gets the later position, and none is skipped.
func TestFeedOrderFollowsCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	early, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = early.Rollback(ctx) }()
	if _, err := store.Append(ctx, early, "early-1", events.NoStream, ev("E", 1), ev("E", 2)); err != nil {
		t.Fatal(err)
	}
	appendTx(ctx, t, store, pool, "late-1", events.NoStream, ev("E", 1))

	feed := func() []string {
		t.Helper()
		if err := store.Sequence(ctx); err != nil {
			t.Fatal(err)
		}
		evs, err := store.ReadAll(ctx, pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i, e := range evs {
			if e.Position != int64(i+1) {
				t.Errorf("position %d at index %d: a gap", e.Position, i)
			}
			out = append(out, e.StreamID)
		}
		return out
	}
	if got := feed(); !slices.Equal(got, []string{"late-1"}) {
		t.Fatalf("while early-1 is open the feed is %v, want [late-1]", got)
	}
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := feed(); !slices.Equal(got, []string{"late-1", "early-1", "early-1"}) {
		t.Fatalf("after early-1 commits the feed is %v", got)
	}
}

// A transaction left open holds back only its own events: stamping goes on
// around it, and its events get positions after everything that committed
// while it was open.
func TestLongTransactionHoldsBackOnlyItself(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	long, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = long.Rollback(ctx) }()
	if _, err := store.Append(ctx, long, "long-1", events.Any, ev("E", 0)); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		for i := range 10 {
			appendTx(ctx, t, store, pool, "other-1", events.Any, ev("E", i))
		}
		if err := store.Sequence(ctx); err != nil {
			t.Fatal(err)
		}
		head, err := store.HeadPosition(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if head != int64(10*round) {
			t.Fatalf("round %d: feed head %d with the long transaction open, want %d", round, head, 10*round)
		}
	}
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := store.ReadAll(ctx, pool, &events.FeedOpts{After: 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].StreamID != "long-1" || evs[0].Position != 31 {
		t.Errorf("after commit the feed beyond 30 is %+v, want long-1 at 31", evs)
	}
}

// A rolled-back append leaves no trace in the feed and no hole in it.
func TestRolledBackAppendLeavesNoGap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	appendTx(ctx, t, store, pool, "rb-1", events.Any, ev("E", 1))
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := store.Append(ctx, tx, "rb-2", events.Any, ev("E", 1)); err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback {
		t.Fatal(err)
	}
	appendTx(ctx, t, store, pool, "rb-3", events.Any, ev("E", 1))
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := store.ReadAll(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Position != 1 || evs[1].Position != 2 || evs[1].StreamID != "rb-3" {
		t.Errorf("feed %+v, want rb-1 at 1 and rb-3 at 2", evs)
	}
}

// Sequence stamps in passes of SequencerBatch until nothing is left, and
// Run stamps in the background without readers asking.
func TestSequencerPasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		background bool
	}{{"Sequence in small batches", false}, {"Run", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := testdb.New(t)
			store := newStore(t, pool, events.Config{SequencerBatch: 3, SequencerInterval: 10 * time.Millisecond})
			for i := range 10 {
				appendTx(ctx, t, store, pool, "seq-1", events.Any, ev("E", i))
			}
			if tc.background {
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() {
					defer close(done)
					store.Run(runCtx)
				}()
				t.Cleanup(func() { stop(); <-done })
			} else if err := store.Sequence(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "all 10 events stamped", func() (bool, error) {
				head, err := store.HeadPosition(ctx, pool)
				return head == 10, err
			})
			evs, err := store.ReadAll(ctx, pool, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range evs {
				if e.Position != int64(i+1) || e.Version != int64(i+1) {
					t.Errorf("event %d: position %d, version %d", i, e.Position, e.Version)
				}
			}
		})
	}
}

// With a sequencer running elsewhere, an event committed before Sequence is
// called is in the feed when Sequence returns, round after round.
func TestSequenceThenReadSeesCommitted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{SequencerInterval: time.Millisecond})
	other := newStore(t, pool, events.Config{SequencerInterval: time.Millisecond})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		other.Run(runCtx)
	}()
	t.Cleanup(func() { stop(); <-done })
	for round := range 200 {
		appendTx(ctx, t, store, pool, fmt.Sprintf("round-%d", round), events.NoStream, ev("E", round))
		if err := store.Sequence(ctx); err != nil {
			t.Fatal(err)
		}
		evs, err := store.ReadAll(ctx, pool, &events.FeedOpts{After: int64(round)})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].StreamID != fmt.Sprintf("round-%d", round) {
			t.Fatalf("round %d: after Sequence the feed beyond %d holds %d events, want the one just committed", round, round, len(evs))
		}
	}
}
