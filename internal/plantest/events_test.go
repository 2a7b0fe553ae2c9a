package plantest_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/plantest"
)

// eventsFixture: history of 200k events in 100k streams of another
// category, some streams tombstoned; live: 5,000 single-event appends of
// the category a subscription reads, 500 appends the sequencer has yet to
// place, and 20 subscriptions.
var eventsFixture = fixture{
	tables: []string{"keel.streams", "keel.events", "keel.feed", "keel.unsequenced", "keel.subscriptions"},
	history: []string{
		`INSERT INTO keel.streams (stream_id, version, deleted_at)
		 SELECT 'other-' || g, 2, CASE WHEN g % 1000 = 0 THEN now() END FROM generate_series(1, 100000) g`,
		`INSERT INTO keel.events (stream_id, version, event_id, type, data, metadata)
		 SELECT 'other-' || g, v, gen_random_uuid(), 't', '{}', '{}' FROM generate_series(1, 100000) g, generate_series(1, 2) v`,
		`INSERT INTO keel.feed (last_position, stream_id, first_version, event_count, category)
		 SELECT 2 * g, 'other-' || g, 1, 2, 'other' FROM generate_series(1, 100000) g`,
	},
	live: []string{
		`INSERT INTO keel.streams (stream_id, version) SELECT 'cat-' || g, 1 FROM generate_series(1, 5000) g`,
		`INSERT INTO keel.events (stream_id, version, event_id, type, data, metadata)
		 SELECT 'cat-' || g, 1, gen_random_uuid(), 't', '{}', '{}' FROM generate_series(1, 5000) g`,
		`INSERT INTO keel.feed (last_position, stream_id, first_version, event_count, category)
		 SELECT 200000 + g, 'cat-' || g, 1, 1, 'cat' FROM generate_series(1, 5000) g`,
		`INSERT INTO keel.unsequenced (stream_id, first_version, event_count)
		 SELECT 'cat-' || g, 2, 1 FROM generate_series(1, 500) g`,
		`INSERT INTO keel.subscriptions (name, category, position, owner, lease_until)
		 SELECT 'sub-' || g, 'cat', 200000, 'c1', now() + interval '30 s' FROM generate_series(1, 20) g`,
	},
}

func TestEventsPlans(t *testing.T) {
	t.Parallel()
	hidden := plantest.Access{Indexes: []string{"streams_hidden"}}
	events := plantest.Access{Indexes: []string{"events_pkey"}}
	// A read of one stream may sort what it reads: that stream's events.
	oneStream := plantest.Access{Indexes: []string{"events_pkey"}, Sort: true}
	subscriptions := plantest.Access{Indexes: []string{"subscriptions_pkey"}, Seq: true}
	checkPlans(t, eventsFixture, []statement{
		{"ReadCategory", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ReadCategory(ctx, db.ReadCategoryParams{Category: "cat", After: 199_000, WindowStart: 199_000, WindowEnd: 209_000, UntilPosition: math.MaxInt64, MaxCount: 100})
		}, plantest.Expect{
			// A generic plan whose statistics say every append is of this
			// category searches the primary key from the checkpoint on:
			// it reads the appends after the checkpoint, never the history
			// before it. A plan may sort the appends it reads: the
			// statement reads one window of positions.
			// The hidden streams are few by design; a plan may read them
			// all once.
			"feed": {Indexes: []string{"feed_category", "feed_pkey"}, Sort: true}, "events": events,
			"streams": {Indexes: []string{"streams_hidden"}, Walk: []string{"streams_hidden"}, Sort: true},
		}},
		{"FeedBound", func(ctx context.Context, q *db.Queries) {
			_, _ = q.FeedBound(ctx, 150_000)
		}, plantest.Expect{"feed": {Indexes: []string{"feed_pkey"}, Walk: []string{"feed_pkey"}}}},
		{"ReadAll", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ReadAll(ctx, db.ReadAllParams{After: 150000, UntilPosition: math.MaxInt64, MaxCount: 100})
		}, plantest.Expect{
			"feed": {Indexes: []string{"feed_pkey"}}, "streams": hidden, "events": events,
		}},
		{"HeadPosition", func(ctx context.Context, q *db.Queries) {
			_, _ = q.HeadPosition(ctx)
		}, plantest.Expect{"feed": {Indexes: []string{"feed_pkey"}, Walk: []string{"feed_pkey"}}}},
		{"ReadStreamForward", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ReadStreamForward(ctx, db.ReadStreamForwardParams{
				StreamID: "other-5", FromVersion: 1, UntilVersion: math.MaxInt64,
				UntilTime: pgtype.Timestamptz{Time: time.Now().Add(time.Hour), Valid: true}, MaxCount: 100,
			})
		}, plantest.Expect{"events": oneStream}},
		{"StreamFeed", func(ctx context.Context, q *db.Queries) {
			_, _ = q.StreamFeed(ctx, db.StreamFeedParams{StreamID: "other-5", MaxVersion: 2, MinVersion: 1})
		}, plantest.Expect{"feed": {Indexes: []string{"feed_stream_id_first_version_key"}, Sort: true}}},
		// The sequencer finds the head at the end of the feed's key and
		// takes the oldest waiting appends in order. keel.unsequenced holds
		// appends for the milliseconds until they are sequenced, never
		// history, and is vacuumed after 10,000 dead rows.
		{"SequenceAppends", func(ctx context.Context, q *db.Queries) {
			_, _ = q.SequenceAppends(ctx, 1000)
		}, plantest.Expect{
			"feed":        {Indexes: []string{"feed_pkey"}, Walk: []string{"feed_pkey"}},
			"unsequenced": {Indexes: []string{"unsequenced_pkey"}, Walk: []string{"unsequenced_pkey"}, Sort: true, Seq: true},
		}},
		// keel.subscriptions holds a row per subscription and no history:
		// a plan may read it whole.
		{"FenceSubscription", func(ctx context.Context, q *db.Queries) {
			_, _ = q.FenceSubscription(ctx, db.FenceSubscriptionParams{Now: now(), Lease: pgtype.Interval{Microseconds: 30e6, Valid: true}, Name: "sub-7", Owner: "c1"})
		}, plantest.Expect{"subscriptions": subscriptions}},
		{"AdvanceSubscription", func(ctx context.Context, q *db.Queries) {
			_ = q.AdvanceSubscription(ctx, db.AdvanceSubscriptionParams{Position: 200100, Name: "sub-7", Owner: "c1"})
		}, plantest.Expect{"subscriptions": subscriptions}},
		{"GetStream", func(ctx context.Context, q *db.Queries) {
			_, _ = q.GetStream(ctx, "other-5")
		}, plantest.Expect{"streams": {Indexes: []string{"streams_pkey"}}}},
	})
}
