package events_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// at names an event by stream and version, and says which position the
// feed gave it.
func at(evs []events.RecordedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%d:%s@%d", e.Position, e.StreamID, e.Version)
	}
	return out
}

// Appends of many events take consecutive positions, and every read cuts
// them at any event: after, until and limit inside an append, truncation
// inside an append, streams read with their positions.
func TestFeedOfBatchedAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	appendTx(ctx, t, store, pool, "a-1", events.NoStream, ev("E", 1), ev("E", 2), ev("E", 3))
	appendTx(ctx, t, store, pool, "b-1", events.NoStream, ev("E", 1), ev("E", 2))
	appendTx(ctx, t, store, pool, "a-1", events.Exactly(3), ev("E", 4), ev("E", 5), ev("E", 6), ev("E", 7))
	appendTx(ctx, t, store, pool, "a-2", events.NoStream, ev("E", 1))
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	all := []string{
		"1:a-1@1", "2:a-1@2", "3:a-1@3", "4:b-1@1", "5:b-1@2",
		"6:a-1@4", "7:a-1@5", "8:a-1@6", "9:a-1@7", "10:a-2@1",
	}
	for _, tc := range []struct {
		name string
		read func() ([]events.RecordedEvent, error)
		want []string
	}{
		{"feed", func() ([]events.RecordedEvent, error) {
			return store.ReadAll(ctx, pool, nil)
		}, all},
		{"feed after the middle of an append", func() ([]events.RecordedEvent, error) {
			return store.ReadAll(ctx, pool, &events.FeedOpts{After: 7})
		}, all[7:]},
		{"feed after the end of an append", func() ([]events.RecordedEvent, error) {
			return store.ReadAll(ctx, pool, &events.FeedOpts{After: 5})
		}, all[5:]},
		{"feed limit inside an append", func() ([]events.RecordedEvent, error) {
			return store.ReadAll(ctx, pool, &events.FeedOpts{After: 1, Limit: 4})
		}, all[1:5]},
		{"feed until inside an append", func() ([]events.RecordedEvent, error) {
			return store.ReadAll(ctx, pool, &events.FeedOpts{After: 2, UntilPosition: 6})
		}, all[2:6]},
		{"feed after and until inside one append", func() ([]events.RecordedEvent, error) {
			return store.ReadAll(ctx, pool, &events.FeedOpts{After: 6, UntilPosition: 8})
		}, all[6:8]},
		{"feed past the head", func() ([]events.RecordedEvent, error) {
			return store.ReadAll(ctx, pool, &events.FeedOpts{After: 10})
		}, []string{}},
		{"category after the middle of an append", func() ([]events.RecordedEvent, error) {
			return store.ReadCategory(ctx, pool, "a", &events.FeedOpts{After: 2, Limit: 5})
		}, []string{"3:a-1@3", "6:a-1@4", "7:a-1@5", "8:a-1@6", "9:a-1@7"}},
		{"category until inside an append", func() ([]events.RecordedEvent, error) {
			return store.ReadCategory(ctx, pool, "a", &events.FeedOpts{UntilPosition: 7})
		}, []string{"1:a-1@1", "2:a-1@2", "3:a-1@3", "6:a-1@4", "7:a-1@5"}},
		{"stream with positions", func() ([]events.RecordedEvent, error) {
			return store.ReadStream(ctx, pool, "a-1", nil)
		}, []string{"1:a-1@1", "2:a-1@2", "3:a-1@3", "6:a-1@4", "7:a-1@5", "8:a-1@6", "9:a-1@7"}},
		{"stream page inside an append", func() ([]events.RecordedEvent, error) {
			return store.ReadStream(ctx, pool, "a-1", &events.ReadOpts{From: 5, Limit: 2})
		}, []string{"7:a-1@5", "8:a-1@6"}},
		{"stream backward across appends", func() ([]events.RecordedEvent, error) {
			return store.ReadStream(ctx, pool, "a-1", &events.ReadOpts{Backward: true, From: 5, Limit: 3})
		}, []string{"7:a-1@5", "6:a-1@4", "3:a-1@3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.read()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(at(got), tc.want) {
				t.Errorf("read %v, want %v", at(got), tc.want)
			}
		})
	}

	t.Run("the event_feed view lists the same feed", func(t *testing.T) {
		rows, err := pool.Query(ctx, "SELECT position, stream_id, version FROM keel.event_feed ORDER BY position")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var pos, version int64
			var stream string
			if err := rows.Scan(&pos, &stream, &version); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d:%s@%d", pos, stream, version))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, all) {
			t.Errorf("keel.event_feed lists %v, want %v", got, all)
		}
	})
}

// Truncation inside an append hides only the events below it, in every
// read; events appended since the last sequencer pass have no position yet.
func TestBatchedAppendTruncatedAndUnsequenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	appendTx(ctx, t, store, pool, "t-1", events.NoStream, ev("E", 1), ev("E", 2), ev("E", 3), ev("E", 4))
	appendTx(ctx, t, store, pool, "t-2", events.NoStream, ev("E", 1))
	if err := store.TruncateBefore(ctx, pool, "t-1", 3); err != nil {
		t.Fatal(err)
	}
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	appendTx(ctx, t, store, pool, "t-1", events.Exactly(4), ev("E", 5), ev("E", 6))

	feed, err := store.ReadAll(ctx, pool, &events.FeedOpts{After: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"3:t-1@3", "4:t-1@4", "5:t-2@1"}; !slices.Equal(at(feed), want) {
		t.Errorf("feed after a truncation inside an append: %v, want %v", at(feed), want)
	}
	cat, err := store.ReadCategory(ctx, pool, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"3:t-1@3", "4:t-1@4", "5:t-2@1"}; !slices.Equal(at(cat), want) {
		t.Errorf("category after a truncation inside an append: %v, want %v", at(cat), want)
	}
	stream, err := store.ReadStream(ctx, pool, "t-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"3:t-1@3", "4:t-1@4", "0:t-1@5", "0:t-1@6"}; !slices.Equal(at(stream), want) {
		t.Errorf("stream with an unsequenced append: %v, want %v", at(stream), want)
	}
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	stream, err = store.ReadStream(ctx, pool, "t-1", &events.ReadOpts{From: 4})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"4:t-1@4", "6:t-1@5", "7:t-1@6"}; !slices.Equal(at(stream), want) {
		t.Errorf("stream once sequenced: %v, want %v", at(stream), want)
	}
}
