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

// The console's statements run while a page is open, every few seconds:
// each reaches the live rows through their partial indexes and history only
// through a keyed range of the last hour.

// liveJobs: the partial indexes of the states that are not final, walked
// whole (they hold live jobs only), and the last hour of jobs_finalized_idx.
var liveJobs = plantest.Access{
	Indexes: []string{"jobs_pending_idx", "jobs_due_idx", "jobs_claim_idx", "jobs_heartbeat_idx", "jobs_finalized_idx"},
	Walk:    []string{"jobs_pending_idx", "jobs_due_idx", "jobs_claim_idx", "jobs_heartbeat_idx"},
	Sort:    true,
}

func TestConsoleJobsPlans(t *testing.T) {
	t.Parallel()
	checkPlans(t, jobsFixture, []statement{
		{"ConsoleJobCounts", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleJobCounts(ctx) },
			plantest.Expect{"jobs": liveJobs}},
		{"ConsoleJobMinutes", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleJobMinutes(ctx) },
			plantest.Expect{"jobs": liveJobs}},
		// Every discarded job, from the index alone.
		{"ConsoleDeadJobs", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleDeadJobs(ctx) },
			plantest.Expect{"jobs": {Indexes: []string{"jobs_finalized_idx"}}}},
		{"ConsoleQueuePauses", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleQueuePauses(ctx) },
			plantest.Expect{"job_queues": {Indexes: []string{"job_queues_pkey"}, Walk: []string{"job_queues_pkey"}, Seq: true, Sort: true}}},
	})
}

// The jobs pages: a page of ids, then the rows by id. Lists of live jobs
// read their state's partial index whole (the work in flight) and sort it
// for the page; the newest jobs and final ones walk an index backwards in
// bounded steps.
func TestConsoleJobsPagePlans(t *testing.T) {
	t.Parallel()
	byKey := plantest.Expect{"jobs": {Indexes: []string{"jobs_pkey"}}}
	live := func(index string) plantest.Expect {
		return plantest.Expect{"jobs": {Indexes: []string{index}, Walk: []string{index}, Sort: true}}
	}
	kind := "noop"
	checkPlans(t, jobsFixture, []statement{
		{"ConsoleJobsNewest", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleJobsNewest(ctx, db.ConsoleJobsNewestParams{Before: math.MaxInt64, Scan: 10000, Kind: &kind, HideInternal: true, MaxRows: 51})
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_pkey"}, Walk: []string{"jobs_pkey"}}}},
		{"ConsoleJobsNewestWindow", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleJobsNewestWindow(ctx, db.ConsoleJobsNewestWindowParams{Before: math.MaxInt64, Scan: 10000})
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_pkey"}, Walk: []string{"jobs_pkey"}}}},
		{"ConsoleJobsFinal", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleJobsFinal(ctx, db.ConsoleJobsFinalParams{
				BeforeAt: pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}, Kind: &kind, HideInternal: true,
				State: db.KeelJobStateCompleted, Step: 51, MaxRows: 51, MaxSteps: 196,
			})
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_finalized_idx"}, Sort: true}}},
		{"ConsoleJobsPending", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleJobsPending(ctx, db.ConsoleJobsPendingParams{Before: math.MaxInt64, HideInternal: true, MaxRows: 51})
		}, live("jobs_pending_idx")},
		{"ConsoleJobsAvailable", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleJobsAvailable(ctx, db.ConsoleJobsAvailableParams{Before: math.MaxInt64, MaxRows: 51, HideInternal: true})
		}, live("jobs_claim_idx")},
		{"ConsoleJobsDue", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleJobsDue(ctx, db.ConsoleJobsDueParams{Before: math.MaxInt64, MaxRows: 51, State: db.KeelJobStateRetryable, HideInternal: true})
		}, live("jobs_due_idx")},
		{"ConsoleJobsRunning", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleJobsRunning(ctx, db.ConsoleJobsRunningParams{Before: math.MaxInt64, MaxRows: 51, HideInternal: true})
		}, live("jobs_heartbeat_idx")},
		{"ConsoleJobsByIDs", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleJobsByIDs(ctx, []int64{1200001, 1200002, 5})
		}, byKey},
		{"ConsoleJobRuntime", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleJobRuntime(ctx, 1200001) }, byKey},
		{"ConsoleWorkflowJobs", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleWorkflowJobs(ctx, db.ConsoleWorkflowJobsParams{Low: 1499000, High: 1501001, Workflow: "w", CreatedAt: now(), ID: 1500001, MaxRows: 500})
		}, plantest.Expect{"jobs": {Indexes: []string{"jobs_pkey"}, Sort: true}}},
		{"DeleteJob", func(ctx context.Context, q *db.Queries) { _, _ = q.DeleteJob(ctx, 1200001) }, byKey},
		{"LockJobForDelete", func(ctx context.Context, q *db.Queries) { _, _ = q.LockJobForDelete(ctx, 1200001) },
			plantest.Expect{"jobs": {Indexes: []string{"jobs_pkey", "jobs_pending_idx"}, Walk: []string{"jobs_pending_idx"}}}},
	})
}

func TestConsoleOutboxPlans(t *testing.T) {
	t.Parallel()
	checkPlans(t, outboxFixture, []statement{
		{"ConsoleOutboxCounts", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleOutboxCounts(ctx) },
			plantest.Expect{"outbox": {
				Indexes: []string{"outbox_pending_idx", "outbox_dead_idx", "outbox_delivered_idx"},
				Walk:    []string{"outbox_pending_idx", "outbox_dead_idx"},
			}}},
		{"ConsoleOutboxMinutes", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleOutboxMinutes(ctx) },
			plantest.Expect{"outbox": {Indexes: []string{"outbox_delivered_idx"}, Sort: true}}},
	})
}

func TestConsoleSagaPlans(t *testing.T) {
	t.Parallel()
	infinity := pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	succeeded := db.KeelSagaRunStatusSucceeded
	// A page of runs walks an index in its order, and its LIMIT stops the
	// read, once the planner has statistics of a history (analyzed-history).
	// Without them (never-analyzed, analyzed-empty) it believes a status
	// holds a few runs, reads them by bitmap and sorts them: Sort allows it.
	page := plantest.Access{Indexes: []string{"saga_runs_status_idx", "saga_runs_finished_workflow_idx"}, Sort: true}
	checkPlans(t, sagaFixture, []statement{
		{"ConsoleSagaRuns", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleSagaRuns(ctx, db.ConsoleSagaRunsParams{BeforeAt: infinity, Max: 51})
		}, plantest.Expect{"saga_runs": page}},
		{"ConsoleSagaRuns/succeeded", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleSagaRuns(ctx, db.ConsoleSagaRunsParams{BeforeAt: now(), BeforeID: "done-5", Max: 51, Status: &succeeded})
		}, plantest.Expect{"saga_runs": page}},
		{"ConsoleSagaWorkflowRuns", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleSagaWorkflowRuns(ctx, db.ConsoleSagaWorkflowRunsParams{Workflow: "order", BeforeAt: infinity, Max: 51})
		}, plantest.Expect{"saga_runs": page}},
		{"ConsoleSagaChildren", func(ctx context.Context, q *db.Queries) {
			parent := "live-7"
			_, _ = q.ConsoleSagaChildren(ctx, db.ConsoleSagaChildrenParams{ParentID: &parent, Max: 201})
		}, plantest.Expect{"saga_runs": {Indexes: []string{"saga_runs_parent_idx"}, Sort: true}}},
		{"ConsoleSagaPendingSignals", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleSagaPendingSignals(ctx, db.ConsoleSagaPendingSignalsParams{RunID: "live-7", Max: 101})
		}, plantest.Expect{"saga_signals": {Indexes: []string{"saga_signals_pending_idx", "saga_signals_run_id_idempotency_key_key"}, Sort: true}}},
		// The fixture's 100,000 finished runs were all created in the last
		// hour, which this statement counts: a scan of the table may be the
		// cheapest way to read them all (Seq).
		{"ConsoleSagaCounts", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleSagaCounts(ctx) },
			plantest.Expect{"saga_runs": {Indexes: []string{"saga_runs_status_idx", "saga_runs_finished_workflow_idx"}, Seq: true, Sort: true}}},
	})
}

// The outbox page: the topics count the live rows of the pending and dead
// indexes; each list reads one page down its state's partial index.
func TestConsoleOutboxPagePlans(t *testing.T) {
	t.Parallel()
	orders := "orders"
	checkPlans(t, outboxFixture, []statement{
		{"ConsoleOutboxTopics", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleOutboxTopics(ctx) },
			plantest.Expect{"outbox": {Indexes: []string{"outbox_pending_idx", "outbox_dead_idx"},
				Walk: []string{"outbox_pending_idx", "outbox_dead_idx"}, Sort: true}}},
		{"ConsoleOutboxPending", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleOutboxPending(ctx, db.ConsoleOutboxPendingParams{Before: math.MaxInt64, Topic: &orders, MaxRows: 51})
		}, plantest.Expect{"outbox": {Indexes: []string{"outbox_pending_idx"}, Sort: true}}},
		{"ConsoleOutboxDead", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleOutboxDead(ctx, db.ConsoleOutboxDeadParams{Before: math.MaxInt64, MaxRows: 51})
		}, plantest.Expect{"outbox": {Indexes: []string{"outbox_dead_idx"}}}},
		{"ConsoleOutboxDeliveredAt", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleOutboxDeliveredAt(ctx, 150000) },
			plantest.Expect{"outbox": {Indexes: []string{"outbox_pkey"}}}},
		// Delivered messages are read down outbox_delivered_idx; the
		// messages of one delivered_at (a relay marks a batch delivered at
		// one instant) are put in seq order by an incremental sort, which
		// holds one instant's messages at a time.
		{"ConsoleOutboxDelivered", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleOutboxDelivered(ctx, db.ConsoleOutboxDeliveredParams{
				BeforeAt: pgtype.Timestamptz{Time: time.Now().Add(-time.Hour), Valid: true}, Before: 150000, MaxRows: 51})
		}, plantest.Expect{"outbox": {Indexes: []string{"outbox_delivered_idx"}, Sort: true}}},
		{"OutboxRequeueDead", func(ctx context.Context, q *db.Queries) {
			_, _ = q.OutboxRequeueDead(ctx, db.OutboxRequeueDeadParams{Topic: &orders})
		}, plantest.Expect{"outbox": {Indexes: []string{"outbox_dead_idx"}, Walk: []string{"outbox_dead_idx"}}}},
	})
}

// The events pages: a page of the feed or of a category down its key, the
// waiting appends, and the subscriptions with their lag.
func TestConsoleEventsPagePlans(t *testing.T) {
	t.Parallel()
	hidden := plantest.Access{Indexes: []string{"streams_hidden"}}
	events := plantest.Access{Indexes: []string{"events_pkey"}}
	checkPlans(t, eventsFixture, []statement{
		{"ConsoleFeed", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleFeed(ctx, db.ConsoleFeedParams{Last: 150_000, MaxCount: 51})
		}, plantest.Expect{"feed": {Indexes: []string{"feed_pkey"}}, "streams": hidden, "events": events}},
		{"ConsoleCategoryFeed", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ConsoleCategoryFeed(ctx, db.ConsoleCategoryFeedParams{Category: "cat", Last: 150_000, MaxCount: 51})
		}, plantest.Expect{"feed": {Indexes: []string{"feed_category"}}, "streams": hidden, "events": events}},
		{"ConsoleUnsequenced", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleUnsequenced(ctx) },
			plantest.Expect{"unsequenced": {Indexes: []string{"unsequenced_pkey"}, Walk: []string{"unsequenced_pkey"}, Seq: true}}},
		// The sort orders the subscriptions; the reads of the feed below it
		// run once per subscription: the head (h), a category's appends
		// past the checkpoint (c), the oldest event waiting (g, n).
		{"ConsoleSubscriptions", func(ctx context.Context, q *db.Queries) { _, _ = q.ConsoleSubscriptions(ctx) },
			plantest.Expect{
				"subscriptions": {Indexes: []string{"subscriptions_pkey"}, Seq: true, Sort: true},
				"feed h":        {Indexes: []string{"feed_pkey"}, Walk: []string{"feed_pkey"}, Sort: true},
				"feed c":        {Indexes: []string{"feed_category"}, Sort: true},
				"feed g":        {Indexes: []string{"feed_pkey"}, Sort: true},
				"feed n":        {Indexes: []string{"feed_category"}, Sort: true},
				"events":        {Indexes: []string{"events_pkey"}, Sort: true},
			}},
	})
}
