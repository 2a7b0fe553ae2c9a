package plantest_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/plantest"
)

// Pending messages of the outbox fixture have seqs from pendingFrom on.
const pendingFrom = 1_000_001

// outboxFixture: a day of history (200k delivered messages over 1,000 keys,
// 2,000 dead letters, 200k inbox records) and 20,000 pending messages, half
// of them keyed, some leased by a relay.
var outboxFixture = fixture{
	tables: []string{"keel.outbox", "keel.inbox"},
	history: []string{
		`INSERT INTO keel.outbox (id, topic, key, payload, state, attempts, created_at, delivered_at)
		 SELECT gen_random_uuid(), 'orders', 'k' || g % 1000, '\x7b7d', 'delivered', 1, t, t + interval '1 ms'
		 FROM generate_series(1, 200000) g, LATERAL (SELECT now() - interval '1 day' + g * interval '400 ms' AS t) x`,
		`INSERT INTO keel.outbox (id, topic, payload, state, attempts, last_error)
		 SELECT gen_random_uuid(), 'orders', '\x7b7d', 'dead', 10, 'boom' FROM generate_series(1, 2000) g`,
		`INSERT INTO keel.inbox (consumer, message_id, processed_at)
		 SELECT 'billing', gen_random_uuid()::text, now() - g * interval '2 s' FROM generate_series(1, 200000) g`,
	},
	live: []string{
		`INSERT INTO keel.outbox (seq, id, topic, key, payload)
		 OVERRIDING SYSTEM VALUE
		 SELECT 1000000 + g, gen_random_uuid(), 'orders', CASE WHEN g % 2 = 0 THEN 'k' || g % 1000 END, '\x7b7d'
		 FROM generate_series(1, 20000) g`,
		`UPDATE keel.outbox SET locked_until = now() + interval '30 s', locked_by = 'r1', attempts = 1
		 WHERE seq BETWEEN 1000001 AND 1000500`,
	},
}

func pendingSeqs(n int) []int64 {
	seqs := make([]int64, n)
	for i := range seqs {
		seqs[i] = int64(pendingFrom + i)
	}
	return seqs
}

func TestOutboxPlans(t *testing.T) {
	t.Parallel()
	// A pending message is found by seq through the primary key or the
	// pending index, whose key is seq too.
	byKey := plantest.Expect{"outbox": {Indexes: []string{"outbox_pkey", "outbox_pending_idx"}}}
	checkPlans(t, outboxFixture, []statement{
		{"OutboxClaim", func(ctx context.Context, q *db.Queries) {
			_, _ = q.OutboxClaim(ctx, db.OutboxClaimParams{Now: now(), LeaseMs: 30000, Relay: "r2", BatchSize: 500})
		}, plantest.Expect{
			// The claim may sort pending messages, never delivered ones.
			"outbox p": {Indexes: []string{"outbox_pending_idx"}, Walk: []string{"outbox_pending_idx"}, Sort: true},
			"outbox o": {Indexes: []string{"outbox_pkey"}},
			"outbox e": {Indexes: []string{"outbox_pending_key_idx"}, Sort: true},
		}},
		{"OutboxMarkDelivered", func(ctx context.Context, q *db.Queries) {
			_, _ = q.OutboxMarkDelivered(ctx, db.OutboxMarkDeliveredParams{Now: now(), Seqs: pendingSeqs(500)})
		}, byKey},
		{"OutboxMarkFailed", func(ctx context.Context, q *db.Queries) {
			seqs := pendingSeqs(100)
			errs, retry := make([]string, len(seqs)), make([]int64, len(seqs))
			for i := range errs {
				errs[i], retry[i] = "boom", 1000
			}
			_, _ = q.OutboxMarkFailed(ctx, db.OutboxMarkFailedParams{MaxAttempts: 10, Now: now(), Seqs: seqs, Errors: errs, RetryMs: retry})
		}, byKey},
		{"OutboxRelease", func(ctx context.Context, q *db.Queries) {
			_ = q.OutboxRelease(ctx, db.OutboxReleaseParams{Seqs: pendingSeqs(500), Relay: "r1"})
		}, byKey},
		// Retention may sort the expired messages, as DeleteFinalizedJobs
		// may sort the expired jobs.
		{"OutboxDeleteDelivered", func(ctx context.Context, q *db.Queries) {
			_, _ = q.OutboxDeleteDelivered(ctx, db.OutboxDeleteDeliveredParams{
				Before: pgtype.Timestamptz{Time: time.Now().Add(-12 * time.Hour), Valid: true}, BatchSize: 10000,
			})
		}, plantest.Expect{"outbox": {Indexes: []string{"outbox_delivered_idx", "outbox_pkey"}, Sort: true}}},
		{"OutboxOldestPending", func(ctx context.Context, q *db.Queries) {
			_, _ = q.OutboxOldestPending(ctx)
		}, plantest.Expect{"outbox": {Indexes: []string{"outbox_pending_idx"}, Walk: []string{"outbox_pending_idx"}}}},
		{"OutboxRequeue", func(ctx context.Context, q *db.Queries) {
			_, _ = q.OutboxRequeue(ctx, db.OutboxRequeueParams{ID: uuid.New(), Now: now()})
		}, plantest.Expect{"outbox": {Indexes: []string{"outbox_id_key"}}}},
		{"OutboxGet", func(ctx context.Context, q *db.Queries) {
			_, _ = q.OutboxGet(ctx, uuid.New())
		}, plantest.Expect{"outbox": {Indexes: []string{"outbox_id_key"}}}},
		{"InboxClaim", func(ctx context.Context, q *db.Queries) {
			_, _ = q.InboxClaim(ctx, db.InboxClaimParams{Consumer: "billing", MessageID: uuid.NewString(), Now: now(), DedupWindowMs: 86400000})
		}, plantest.Expect{"inbox": {Indexes: []string{"inbox_pkey"}}}},
		{"InboxExpire", func(ctx context.Context, q *db.Queries) {
			_, _ = q.InboxExpire(ctx, db.InboxExpireParams{Before: pgtype.Timestamptz{Time: time.Now().Add(-24 * time.Hour), Valid: true}, BatchSize: 10000})
		}, plantest.Expect{"inbox": {Indexes: []string{"inbox_processed_at_idx"}, TID: true}}},
	})
}
