package plantest_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/plantest"
)

// sagaFixture: 100k finished runs of three steps each, with their
// completed jobs, and 1,000 running runs with one step done, a signal
// waiting and a running job.
var sagaFixture = fixture{
	tables: []string{"keel.saga_runs", "keel.saga_steps", "keel.saga_signals", "keel.jobs"},
	history: []string{
		`INSERT INTO keel.saga_runs (id, workflow, version, status, queue, input, output, epoch, started_at, finished_at)
		 SELECT 'done-' || g, 'order', 1, 'succeeded', 'default', '{}', '{}', 1, now() - interval '1 hour', now() FROM generate_series(1, 100000) g`,
		`INSERT INTO keel.saga_steps (run_id, seq, name, kind, status, output, started_at)
		 SELECT 'done-' || g, s, 'step' || s, 'step', 'completed', '{}', now() FROM generate_series(1, 100000) g, generate_series(1, 3) s`,
		`INSERT INTO keel.jobs (id, kind, state, args, attempt, attempted_at, finalized_at)
		 SELECT g, 'keel.saga.run', 'completed', jsonb_build_object('run_id', 'done-' || g, 'generation', 1), 1, now(), now()
		 FROM generate_series(1, 100000) g`,
	},
	live: []string{
		`INSERT INTO keel.saga_runs (id, workflow, version, status, queue, input, epoch, owner, started_at)
		 SELECT 'live-' || g, 'order', 1, 'running', 'default', '{}', 1, 'w1', now() FROM generate_series(1, 1000) g`,
		`INSERT INTO keel.saga_steps (run_id, seq, name, kind, status, output, started_at)
		 SELECT 'live-' || g, 1, 'step1', 'step', 'completed', '{}', now() FROM generate_series(1, 1000) g`,
		`INSERT INTO keel.saga_signals (run_id, name, value) SELECT 'live-' || g, 'paid', '{}' FROM generate_series(1, 1000) g`,
		`INSERT INTO keel.jobs (id, kind, state, args, attempt, attempted_at, heartbeat_at, owner)
		 SELECT 1000000 + g, 'keel.saga.run', 'running', jsonb_build_object('run_id', 'live-' || g, 'generation', 1), 1, now(), now(), 'w1'
		 FROM generate_series(1, 1000) g`,
	},
}

// A young keel database: the live runs alone, a few thousand rows, the way
// a new service or a benchmark's fresh database holds them. The batch
// statements that join a JSON array to a table must still read it by key:
// counting on 100 items from jsonb_array_elements, a planner hash-joined
// them to a sequential scan of every run and job, and a prepared statement
// kept that plan as the tables grew.
func TestSagaBatchPlansOnYoungTables(t *testing.T) {
	t.Parallel()
	owner := "w1"
	runs := plantest.Access{Indexes: []string{"saga_runs_pkey"}}
	steps := plantest.Access{Indexes: []string{"saga_steps_pkey"}}
	young := fixture{tables: sagaFixture.tables, live: sagaFixture.live}
	checkPlans(t, young, []statement{
		{"ReadPendingRuns", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ReadPendingRuns(ctx, json.RawMessage(`[{"id": "live-7", "generation": 1}, {"id": "live-8", "generation": 1}]`))
		}, plantest.Expect{"saga_runs": runs, "saga_steps": steps}},
		{"CommitMany", func(ctx context.Context, q *db.Queries) {
			_, _ = q.CommitMany(ctx, db.CommitManyParams{Owner: &owner, Steps: json.RawMessage(`[
				{"run_id": "live-7", "epoch": 1, "seq": 2, "name": "step2", "kind": "step", "status": "completed", "output": {}, "attempts": 1},
				{"run_id": "live-8", "epoch": 1, "seq": 2, "name": "step2", "kind": "step", "status": "completed", "output": {}, "attempts": 1, "publish": true}]`),
				Ends: json.RawMessage(`[
				{"id": "live-9", "epoch": 1, "status": "succeeded", "output": {}, "job_id": 1000009, "job_attempt": 1}]`),
				Channel: "keel_saga_done", Notify: true})
		}, plantest.Expect{"saga_runs": runs, "saga_steps": steps, "saga_values": {Indexes: []string{"saga_values_pkey"}}, "jobs": {Indexes: []string{"jobs_pkey"}}}},
	})
}

func TestSagaPlans(t *testing.T) {
	t.Parallel()
	owner := "w1"
	runs := plantest.Access{Indexes: []string{"saga_runs_pkey"}}
	steps := plantest.Access{Indexes: []string{"saga_steps_pkey"}}
	queues := plantest.Access{Indexes: []string{"job_queues_pkey"}}
	checkPlans(t, sagaFixture, []statement{
		{"ClaimRun", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ClaimRun(ctx, db.ClaimRunParams{Owner: &owner, ID: "live-7", Generation: 1})
		}, plantest.Expect{"saga_runs": runs, "saga_steps": steps}},
		{"ReadPendingRuns", func(ctx context.Context, q *db.Queries) {
			_, _ = q.ReadPendingRuns(ctx, json.RawMessage(`[{"id": "live-7", "generation": 1}, {"id": "live-8", "generation": 1}]`))
		}, plantest.Expect{"saga_runs": runs, "saga_steps": steps}},
		// One run's steps, which it may sort.
		{"LoadHistory", func(ctx context.Context, q *db.Queries) {
			_, _ = q.LoadHistory(ctx, "live-7")
		}, plantest.Expect{"saga_steps": {Indexes: []string{"saga_steps_pkey"}, Sort: true}}},
		{"Checkpoint", func(ctx context.Context, q *db.Queries) {
			_, _ = q.Checkpoint(ctx, db.CheckpointParams{
				RunID: "live-7", Epoch: 1, Seq: 2, Name: "step2", Kind: "step", Status: db.KeelSagaStepStatusCompleted,
				Output: json.RawMessage(`{}`), Attempts: 1, StartedAt: now(), Owner: &owner,
			})
		}, plantest.Expect{"saga_runs": runs, "saga_steps": steps}},
		{"CommitMany", func(ctx context.Context, q *db.Queries) {
			_, _ = q.CommitMany(ctx, db.CommitManyParams{Owner: &owner, Steps: json.RawMessage(`[
				{"run_id": "live-7", "epoch": 1, "seq": 2, "name": "step2", "kind": "step", "status": "completed", "output": {}, "attempts": 1},
				{"run_id": "live-8", "epoch": 1, "seq": 2, "name": "step2", "kind": "step", "status": "completed", "output": {}, "attempts": 1, "publish": true}]`),
				Ends: json.RawMessage(`[
				{"id": "live-9", "epoch": 1, "status": "succeeded", "output": {}, "job_id": 1000009, "job_attempt": 1},
				{"id": "live-10", "epoch": 1, "status": "failed", "error": {}, "job_id": 1000010, "job_attempt": 1}]`),
				Channel: "keel_saga_done", Notify: true})
		}, plantest.Expect{"saga_runs": runs, "saga_steps": steps, "saga_values": {Indexes: []string{"saga_values_pkey"}}, "jobs": {Indexes: []string{"jobs_pkey"}}}},
		// A group of starts: inserts, and the pause of the queue of a job
		// written claimed.
		{"StartRunsWithJobs", func(ctx context.Context, q *db.Queries) {
			_, _ = q.StartRunsWithJobs(ctx, db.StartRunsWithJobsParams{Owner: &owner, Runs: json.RawMessage(`[
				{"id": "new-1", "workflow": "order", "version": 1, "queue": "default", "input": {}, "job_metadata": {}, "claim": true},
				{"id": "new-2", "workflow": "order", "version": 1, "queue": "default", "input": {}, "timeout_us": 1000, "job_metadata": {}}]`),
				JobKind: "keel.saga.run", JobMaxAttempts: 1 << 20, Channel: "keel_jobs", Notify: true})
		}, plantest.Expect{"job_queues": queues}},
		{"LockRun", func(ctx context.Context, q *db.Queries) {
			_, _ = q.LockRun(ctx, db.LockRunParams{ID: "live-7", Epoch: 1})
		}, plantest.Expect{"saga_runs": runs}},
		{"ParkRun", func(ctx context.Context, q *db.Queries) {
			reason := "sleep"
			_, _ = q.ParkRun(ctx, db.ParkRunParams{WakeAt: now(), WaitReason: &reason, ID: "live-7", Epoch: 1})
		}, plantest.Expect{"saga_runs": runs}},
		{"FinishRun", func(ctx context.Context, q *db.Queries) {
			_, _ = q.FinishRun(ctx, db.FinishRunParams{Status: db.KeelSagaRunStatusSucceeded, Output: json.RawMessage(`{}`), ID: "live-7", Epoch: 1})
		}, plantest.Expect{"saga_runs": runs}},
		{"TakeSignal", func(ctx context.Context, q *db.Queries) {
			_, _ = q.TakeSignal(ctx, db.TakeSignalParams{RunID: "live-7", Epoch: 1, Name: "paid", Seq: 2, Owner: &owner})
		}, plantest.Expect{
			"saga_runs": runs, "saga_steps": steps,
			"saga_signals": {Indexes: []string{"saga_signals_pending_idx", "saga_signals_pkey"}},
		}},
		// A signal: the run, the signal, the wake-up job (here written
		// claimed) and the pause of its queue.
		{"SignalRunWithJob", func(ctx context.Context, q *db.Queries) {
			_, _ = q.SignalRunWithJob(ctx, db.SignalRunWithJobParams{
				RunID: "live-7", Name: "paid", Value: json.RawMessage(`{}`), Owner: &owner, ClaimQueue: "default",
				JobKind: "keel.saga.run", JobMetadata: json.RawMessage(`{}`), JobMaxAttempts: 1 << 20, Channel: "keel_jobs", Notify: true,
			})
		}, plantest.Expect{"saga_runs": runs, "saga_signals": {Indexes: []string{"saga_signals_run_id_idempotency_key_key"}}, "job_queues": queues}},
		{"CancelsRequested", func(ctx context.Context, q *db.Queries) {
			_, _ = q.CancelsRequested(ctx, []string{"live-7", "live-8"})
		}, plantest.Expect{"saga_runs": runs}},
		{"GetRuns", func(ctx context.Context, q *db.Queries) {
			_, _ = q.GetRuns(ctx, []string{"live-7", "done-9", "done-10"})
		}, plantest.Expect{"saga_runs": runs}},
		// A lone start: two inserts, and the pause of its queue when its job
		// is written claimed.
		{"StartRunWithJob", func(ctx context.Context, q *db.Queries) {
			_, _ = q.StartRunWithJob(ctx, db.StartRunWithJobParams{
				ID: "new-1", Workflow: "order", Version: 1, Queue: "default", Input: json.RawMessage(`{}`), Owner: &owner,
				JobKind: "keel.saga.run", JobMetadata: json.RawMessage(`{}`), JobMaxAttempts: 1 << 20, Channel: "keel_jobs", Notify: true,
			})
		}, plantest.Expect{"job_queues": queues}},
		{"FinishedRuns", func(ctx context.Context, q *db.Queries) {
			_, _ = q.FinishedRuns(ctx, []string{"live-7", "done-9", "done-10"})
		}, plantest.Expect{"saga_runs": runs}},
		{"ConsumeSignal", func(ctx context.Context, q *db.Queries) {
			seq := int32(2)
			_, _ = q.ConsumeSignal(ctx, db.ConsumeSignalParams{Seq: &seq, RunID: "live-7", Name: "paid"})
		}, plantest.Expect{"saga_signals": {Indexes: []string{"saga_signals_pending_idx", "saga_signals_pkey"}}}},
	})
}
