package plantest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/plantest"
)

// Running jobs of the jobs fixture have ids from runningFrom on.
const (
	runningFrom = 1_000_001
	runningJobs = 2_000
)

// jobsFixture: a day of history (200k completed jobs and some cancelled
// and discarded ones), and a live set: 2,000 running jobs of one owner, 50
// whose owner died, 5,000 available, scheduled, retryable and pending ones.
var jobsFixture = fixture{
	tables: []string{"keel.jobs"},
	history: []string{
		`INSERT INTO keel.jobs (kind, state, args, attempt, created_at, attempted_at, finalized_at, progress)
		 SELECT 'noop', 'completed', '{"n":1}', 1, t, t, t + interval '2 ms', 100
		 FROM generate_series(1, 200000) g, LATERAL (SELECT now() - interval '1 day' + g * interval '400 ms' AS t) x`,
		`INSERT INTO keel.jobs (kind, state, attempt, max_attempts, finalized_at, errors)
		 SELECT 'noop', s, 1, 1, now() - g * interval '10 s', '[{"error":"boom"}]'
		 FROM generate_series(1, 5000) g, unnest('{cancelled,discarded}'::keel.job_state[]) s`,
	},
	live: []string{
		`INSERT INTO keel.jobs (id, kind, state, attempt, attempted_at, heartbeat_at, owner)
		 SELECT 1000000 + g, 'noop', 'running', 1, now(), now(), 'w1' FROM generate_series(1, 2000) g`,
		`INSERT INTO keel.jobs (id, kind, state, attempt, attempted_at, heartbeat_at, owner)
		 SELECT 1100000 + g, 'noop', 'running', 1, now() - interval '1 hour', now() - interval '1 hour', 'dead' FROM generate_series(1, 50) g`,
		`INSERT INTO keel.jobs (id, kind, queue, priority) SELECT 1200000 + g, 'noop', 'default', 1 + g % 4 FROM generate_series(1, 5000) g`,
		`INSERT INTO keel.jobs (id, kind, state, run_at) SELECT 1300000 + g, 'noop', 'scheduled', now() + g * interval '1 s' FROM generate_series(1, 1000) g`,
		`INSERT INTO keel.jobs (id, kind, state, attempt, run_at) SELECT 1400000 + g, 'noop', 'retryable', 1, now() - interval '1 s' FROM generate_series(1, 500) g`,
		`INSERT INTO keel.jobs (id, kind, state, depends_on) SELECT 1500000 + g, 'noop', 'pending', ARRAY[1000001 + g % 2000, 1 + g] FROM generate_series(1, 300) g`,
	},
}

func runningBatch(n int) ([]int64, []int32) {
	ids, attempts := make([]int64, n), make([]int32, n)
	for i := range ids {
		ids[i], attempts[i] = int64(runningFrom+i*(runningJobs/n)), 1
	}
	return ids, attempts
}

func now() pgtype.Timestamptz { return pgtype.Timestamptz{Time: time.Now(), Valid: true} }

func TestJobsPlans(t *testing.T) {
	t.Parallel()
	owner := "w1"
	byKey := plantest.Expect{"jobs": {Indexes: []string{"jobs_pkey"}}}
	checkPlans(t, jobsFixture, []statement{
		{"ClaimJobs", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ClaimJobs(ctx, db.ClaimJobsParams{Now: now(), Owner: &owner, Queue: "default", Max: 100})
		}, plantest.Expect{
			"jobs":       {Indexes: []string{"jobs_claim_idx", "jobs_pkey"}},
			"job_queues": {Indexes: []string{"job_queues_pkey"}},
		}},
		{"CompleteJobs", func(ctx context.Context, q *db.Queries) {
			ids, attempts := runningBatch(300)
			_, _ = q.CompleteJobs(ctx, db.CompleteJobsParams{Now: now(), Ids: ids, Attempts: attempts})
		}, byKey},
		{"FinishAttempt", func(ctx context.Context, q *db.Queries) {
			_, _ = q.FinishAttempt(ctx, db.FinishAttemptParams{
				State: db.KeelJobStateRetryable, RunAt: now(), Error: json.RawMessage(`{"error":"x"}`),
				Now: now(), ID: runningFrom, Attempt: 1,
			})
		}, byKey},
		{"Heartbeat", func(ctx context.Context, q *db.Queries) {
			ids, _ := runningBatch(500)
			_, _ = q.Heartbeat(ctx, db.HeartbeatParams{Now: now(), Owner: &owner, Ids: ids})
		}, byKey},
		// Rescue and promotion may sort what they read: live rows of
		// partial indexes (running jobs, due jobs), never history.
		{"RescueJobs", func(ctx context.Context, q *db.Queries) {
			_, _ = q.RescueJobs(ctx, db.RescueJobsParams{Now: now(), StaleBefore: pgtype.Timestamptz{Time: time.Now().Add(-time.Minute), Valid: true}, Max: 1000})
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_heartbeat_idx", "jobs_pkey"}, Sort: true}}},
		{"PromoteDueJobs", func(ctx context.Context, q *db.Queries) {
			_, _ = q.PromoteDueJobs(ctx, db.PromoteDueJobsParams{Now: now(), Max: 1000})
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_due_idx", "jobs_pkey"}, Sort: true}}},
		{"ResolveDependencies", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ResolveDependencies(ctx, db.ResolveDependenciesParams{Now: now(), Max: 1000})
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_pending_idx", "jobs_pkey"}, Walk: []string{"jobs_pending_idx"}}}},
		// Retention may sort the rows it reads, which are the expired jobs:
		// those finalized since its last pass, however large the history
		// they expire from. Without its order, a plan whose statistics
		// count the history as expired scans the table from its start.
		{"DeleteFinalizedJobs", func(ctx context.Context, q *db.Queries) {
			_, _ = q.DeleteFinalizedJobs(ctx, db.DeleteFinalizedJobsParams{
				State: db.KeelJobStateCompleted, Before: pgtype.Timestamptz{Time: time.Now().Add(-12 * time.Hour), Valid: true}, Max: 10000,
			})
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_finalized_idx", "jobs_pkey"}, Sort: true}}},
		{"CancelJob", func(ctx context.Context, q *db.Queries) {
			_, _ = q.CancelJob(ctx, db.CancelJobParams{ID: runningFrom, Now: now()})
		}, byKey},
		{"RetryJob", func(ctx context.Context, q *db.Queries) {
			_, _ = q.RetryJob(ctx, db.RetryJobParams{ID: 10, Now: now()})
		}, byKey},
		{"DependencyOutputs", func(ctx context.Context, q *db.Queries) {
			// One job's dependencies, which it may sort.
			_, _ = q.DependencyOutputs(ctx, 1500001)
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_pkey"}, Sort: true}}},
		{"RecordProgress", func(ctx context.Context, q *db.Queries) {
			_, _ = q.RecordProgress(ctx, db.RecordProgressParams{Progress: 50, ID: runningFrom, Attempt: 1})
		}, byKey},
	})
}
