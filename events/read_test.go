package events_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// Stream reads forward and backward, with limits, up to a version and up to
// a point in time.
func TestReadStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	var recorded []time.Time
	for i := 1; i <= 5; i++ {
		res := appendTx(ctx, t, store, pool, "read-1", events.Any, ev("E", i))
		recorded = append(recorded, res.Events[0].RecordedAt)
	}
	for _, tc := range []struct {
		name string
		opts *events.ReadOpts
		want []int64
	}{
		{"all", &events.ReadOpts{}, []int64{1, 2, 3, 4, 5}},
		{"from 3", &events.ReadOpts{From: 3}, []int64{3, 4, 5}},
		{"from 2 limit 2", &events.ReadOpts{From: 2, Limit: 2}, []int64{2, 3}},
		{"until version 3", &events.ReadOpts{UntilVersion: 3}, []int64{1, 2, 3}},
		{"until time of 2", &events.ReadOpts{UntilTime: recorded[1]}, []int64{1, 2}},
		{"until time before all", &events.ReadOpts{UntilTime: recorded[0].Add(-time.Microsecond)}, []int64{}},
		{"backward", &events.ReadOpts{Backward: true}, []int64{5, 4, 3, 2, 1}},
		{"backward limit 2", &events.ReadOpts{Backward: true, Limit: 2}, []int64{5, 4}},
		{"backward from 3", &events.ReadOpts{Backward: true, From: 3}, []int64{3, 2, 1}},
		{"backward until version 4 limit 1", &events.ReadOpts{Backward: true, UntilVersion: 4, Limit: 1}, []int64{4}},
		{"backward until time of 3", &events.ReadOpts{Backward: true, UntilTime: recorded[2]}, []int64{3, 2, 1}},
		{"past the end", &events.ReadOpts{From: 9}, []int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.ReadStream(ctx, pool, "read-1", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(versions(got), tc.want) {
				t.Errorf("versions %v, want %v", versions(got), tc.want)
			}
		})
	}
	if _, err := store.ReadStream(ctx, pool, "read-missing", nil); !errors.Is(err, events.ErrStreamNotFound) {
		t.Errorf("missing stream: %v", err)
	}
	if _, err := store.ReadStream(ctx, pool, "read-1", &events.ReadOpts{Limit: -1}); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("negative limit: %v", err)
	}
}

// The stored event carries everything that was appended.
func TestRecordedEventFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	in, err := events.NewEvent("OrderPlaced", map[string]int{"total": 42})
	if err != nil {
		t.Fatal(err)
	}
	in.Metadata = []byte(`{"user": "ann"}`)
	in.CausationID, in.CorrelationID = "cmd-1", "conv-1"
	res := appendTx(ctx, t, store, pool, "order-7", events.NoStream, in)
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := store.ReadStream(ctx, pool, "order-7", nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("read: %v %v", got, err)
	}
	e := got[0]
	var data struct{ Total int }
	if err := e.Decode(&data); err != nil {
		t.Fatal(err)
	}
	if e.ID != res.Events[0].ID || e.Type != "OrderPlaced" || data.Total != 42 || e.Position != 1 ||
		e.CausationID != "cmd-1" || e.CorrelationID != "conv-1" || string(e.Metadata) != `{"user": "ann"}` ||
		e.Category() != "order" || !e.RecordedAt.Equal(res.Events[0].RecordedAt) {
		t.Errorf("stored event %+v differs from the appended one (%+v)", e, res.Events[0])
	}
}

// A category holds the streams whose id starts with it and a '-'.
func TestReadCategory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	for i, stream := range []string{"order-1", "cart-1", "order-2", "order", "orders-1", "order-1"} {
		appendTx(ctx, t, store, pool, stream, events.Any, ev("E", i))
	}
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := store.ReadCategory(ctx, pool, "order", nil)
	if err != nil {
		t.Fatal(err)
	}
	var streams []string
	var positions []int64
	for _, e := range got {
		streams = append(streams, e.StreamID)
		positions = append(positions, e.Position)
	}
	if want := []string{"order-1", "order-2", "order", "order-1"}; !slices.Equal(streams, want) {
		t.Errorf("category order: streams %v, want %v", streams, want)
	}
	if want := []int64{1, 3, 4, 6}; !slices.Equal(positions, want) {
		t.Errorf("category order: positions %v, want %v", positions, want)
	}
	page, err := store.ReadCategory(ctx, pool, "order", &events.FeedOpts{After: 3, Limit: 1})
	if err != nil || len(page) != 1 || page[0].Position != 4 {
		t.Errorf("paged category read: %+v %v", page, err)
	}
}

// A category read finds the category's events however far apart other
// appends put them in the feed: it reads the feed window by window, an
// append of the category that a window, a page or UntilPosition cuts in two
// is read up to or on from where the cut fell.
func TestReadCategoryAcrossWindows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	many := func(n int) []events.EventData {
		evs := make([]events.EventData, n)
		for i := range evs {
			evs[i] = ev("E", i)
		}
		return evs
	}
	// Positions: other-1 1–15000, cat-a 15001–15003, other-2 15004–40003,
	// cat-b 40004–52003 (one append across a window's end), cat-c 52004.
	appendTx(ctx, t, store, pool, "other-1", events.NoStream, many(15_000)...)
	appendTx(ctx, t, store, pool, "cat-a", events.NoStream, many(3)...)
	appendTx(ctx, t, store, pool, "other-2", events.NoStream, many(25_000)...)
	appendTx(ctx, t, store, pool, "cat-b", events.NoStream, many(12_000)...)
	appendTx(ctx, t, store, pool, "cat-c", events.NoStream, many(1)...)
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	want := []int64{15001, 15002, 15003}
	for p := int64(40004); p <= 52004; p++ {
		want = append(want, p)
	}
	for _, tc := range []struct {
		name         string
		after, until int64
		limit        int
	}{
		{"from the start, default pages", 0, 0, 0},
		{"from the start, pages of 7", 0, 0, 7},
		{"from inside cat-a, pages of 1000", 15001, 0, 1000},
		{"from inside cat-b, pages of 5000", 45000, 0, 5000},
		{"from the head", 52004, 0, 0},
		{"until inside other-2", 0, 20000, 0},
		{"until inside cat-b, pages of 1000", 0, 45000, 1000},
		{"until the head", 15002, 52004, 0},
		{"until past the head", 0, 90000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int64
			after := tc.after
			for {
				page, err := store.ReadCategory(ctx, pool, "cat", &events.FeedOpts{After: after, Limit: tc.limit, UntilPosition: tc.until})
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				if tc.limit > 0 && len(page) > tc.limit {
					t.Fatalf("a page of %d events, limit %d", len(page), tc.limit)
				}
				for _, e := range page {
					got = append(got, e.Position)
				}
				after = page[len(page)-1].Position
			}
			i, _ := slices.BinarySearch(want, tc.after+1)
			j := len(want)
			if tc.until > 0 {
				j, _ = slices.BinarySearch(want, tc.until+1)
			}
			if !slices.Equal(got, want[i:j]) {
				t.Errorf("read %d events (%v…), want %d (%v…)", len(got), got[:min(len(got), 5)], len(want[i:j]), want[i:min(j, i+5)])
			}
		})
	}
}

// Tombstoned streams vanish from every read and refuse appends; truncated
// events vanish from every read while versions go on.
func TestTombstoneAndTruncate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	appendTx(ctx, t, store, pool, "life-1", events.NoStream, ev("E", 1), ev("E", 2), ev("E", 3), ev("E", 4))
	appendTx(ctx, t, store, pool, "life-2", events.NoStream, ev("E", 1), ev("E", 2))
	if err := store.TruncateBefore(ctx, pool, "life-1", 3); err != nil {
		t.Fatal(err)
	}
	if err := store.TruncateBefore(ctx, pool, "life-1", 2); err != nil {
		t.Fatal(err)
	}
	if err := store.Tombstone(ctx, pool, "life-2", events.Exactly(1)); !errors.Is(err, events.ErrVersionConflict) {
		t.Errorf("tombstone at the wrong version: %v", err)
	}
	if err := store.Tombstone(ctx, pool, "life-2", events.Exactly(2)); err != nil {
		t.Fatal(err)
	}
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := store.ReadStream(ctx, pool, "life-1", nil)
	if err != nil || !slices.Equal(versions(got), []int64{3, 4}) {
		t.Errorf("truncated stream reads %v %v, want versions 3 4", versions(got), err)
	}
	back, err := store.ReadStream(ctx, pool, "life-1", &events.ReadOpts{Backward: true})
	if err != nil || !slices.Equal(versions(back), []int64{4, 3}) {
		t.Errorf("truncated stream reads backward %v %v, want versions 4 3", versions(back), err)
	}
	res := appendTx(ctx, t, store, pool, "life-1", events.Exactly(4), ev("E", 5))
	if res.Version != 5 {
		t.Errorf("append after truncate got version %d, want 5", res.Version)
	}
	if _, err := store.ReadStream(ctx, pool, "life-2", nil); !errors.Is(err, events.ErrStreamDeleted) {
		t.Errorf("reading a tombstoned stream: %v", err)
	}
	for _, exp := range []events.ExpectedVersion{events.Any, events.NoStream, events.Exactly(2)} {
		if _, err := store.Append(ctx, pool, "life-2", exp, ev("E", 3)); !errors.Is(err, events.ErrStreamDeleted) {
			t.Errorf("append with %v to a tombstoned stream: %v", exp, err)
		}
	}
	if err := store.TruncateBefore(ctx, pool, "life-2", 2); !errors.Is(err, events.ErrStreamDeleted) {
		t.Errorf("truncating a tombstoned stream: %v", err)
	}
	if err := store.Tombstone(ctx, pool, "life-3", events.Any); !errors.Is(err, events.ErrVersionConflict) {
		t.Errorf("tombstoning a missing stream: %v", err)
	}
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	feed, err := store.ReadAll(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range feed {
		seen = append(seen, e.StreamID+"@"+string(rune('0'+e.Version)))
	}
	if want := []string{"life-1@3", "life-1@4", "life-1@5"}; !slices.Equal(seen, want) {
		t.Errorf("feed shows %v, want %v", seen, want)
	}
	cat, err := store.ReadCategory(ctx, pool, "life", nil)
	if err != nil || len(cat) != 3 {
		t.Errorf("category shows %d events (%v), want 3", len(cat), err)
	}
	info, err := store.Stream(ctx, pool, "life-2")
	if err != nil || !info.Deleted || info.Version != 2 {
		t.Errorf("tombstoned stream info %+v %v", info, err)
	}
}
