-- Queries the console's sagas pages run, every few seconds while a page is
-- open. A list reads a page of runs through an index, newest first, from a
-- keyset cursor (before_at, before_id): with no cursor, before_at is
-- 'infinity'. Its cost follows the page, not the history.

-- name: ConsoleSagaRuns :many
-- A page of runs of any workflow, in one status or in all: for each status,
-- the newest runs before the cursor through saga_runs_status_idx (status,
-- created_at, id), in its order, then the newest of those.
SELECT r.id, r.workflow, r.version, r.status, r.parent_id, r.wait_reason, r.wake_at,
       (r.cancel_requested_at IS NOT NULL)::boolean AS cancel_requested,
       coalesce(r.error->>'kind', '')::text AS error_kind, coalesce(r.error->>'message', '')::text AS error_message, r.last_error,
       r.created_at, r.updated_at, r.finished_at
FROM unnest(enum_range(NULL::keel.saga_run_status)) AS s(status)
CROSS JOIN LATERAL (
    SELECT * FROM keel.saga_runs x
    WHERE x.status = s.status
      AND (x.created_at, x.id) < (@before_at::timestamptz, @before_id::text)
    ORDER BY x.created_at DESC, x.id DESC
    LIMIT @max
) r
WHERE sqlc.narg('status')::keel.saga_run_status IS NULL OR s.status = sqlc.narg('status')
ORDER BY r.created_at DESC, r.id DESC
LIMIT @max;

-- name: ConsoleSagaWorkflowRuns :many
-- A page of one workflow's runs, in one status or in all: the runs not
-- finished through saga_runs_status_idx (a scan of the runs in flight in
-- that status), the finished ones through saga_runs_finished_workflow_idx
-- (workflow, status, created_at), which the repeated status list lets the
-- planner use.
SELECT id, workflow, version, status, parent_id, wait_reason, wake_at, cancel_requested,
       error_kind, error_message, last_error, created_at, updated_at, finished_at
FROM (
    SELECT r.id, r.workflow, r.version, r.status, r.parent_id, r.wait_reason, r.wake_at,
           (r.cancel_requested_at IS NOT NULL)::boolean AS cancel_requested,
           coalesce(r.error->>'kind', '')::text AS error_kind, coalesce(r.error->>'message', '')::text AS error_message, r.last_error,
           r.created_at, r.updated_at, r.finished_at
    FROM unnest('{pending,running,waiting,compensating}'::keel.saga_run_status[]) AS s(status)
    CROSS JOIN LATERAL (
        SELECT * FROM keel.saga_runs x
        WHERE x.status = s.status AND x.workflow = @workflow
          AND (x.created_at, x.id) < (@before_at::timestamptz, @before_id::text)
        ORDER BY x.created_at DESC, x.id DESC
        LIMIT @max
    ) r
    WHERE sqlc.narg('status')::keel.saga_run_status IS NULL OR s.status = sqlc.narg('status')
    UNION ALL
    SELECT r.id, r.workflow, r.version, r.status, r.parent_id, r.wait_reason, r.wake_at,
           (r.cancel_requested_at IS NOT NULL)::boolean,
           coalesce(r.error->>'kind', '')::text, coalesce(r.error->>'message', '')::text, r.last_error,
           r.created_at, r.updated_at, r.finished_at
    FROM unnest('{succeeded,failed,cancelled}'::keel.saga_run_status[]) AS s(status)
    CROSS JOIN LATERAL (
        SELECT * FROM keel.saga_runs x
        WHERE x.workflow = @workflow AND x.status = s.status AND x.status IN ('succeeded', 'failed', 'cancelled')
          AND (x.created_at, x.id) < (@before_at::timestamptz, @before_id::text)
        ORDER BY x.created_at DESC, x.id DESC
        LIMIT @max
    ) r
    WHERE sqlc.narg('status')::keel.saga_run_status IS NULL OR s.status = sqlc.narg('status')
) runs
ORDER BY created_at DESC, id DESC
LIMIT @max;

-- name: ConsoleSagaChildren :many
-- A run's children through saga_runs_parent_idx, in the order their parent
-- started them: at most max of them.
SELECT id, workflow, version, status, parent_seq, created_at, finished_at
FROM keel.saga_runs
WHERE parent_id = @parent_id
ORDER BY parent_seq, created_at, id
LIMIT @max;

-- name: ConsoleSagaPendingSignals :many
-- A run's signals that no wait has consumed yet, oldest first, through
-- saga_signals_pending_idx: at most max of them.
SELECT id, name, value, idempotency_key, sent_at
FROM keel.saga_signals
WHERE run_id = @run_id AND consumed_seq IS NULL
ORDER BY id
LIMIT @max;
