-- Queries the console's jobs pages run. A list reads the ids of one page
-- through the index that fits its state filter, then the page's rows by
-- primary key (ConsoleJobsByIDs). keel.jobs has no index on kind, queue
-- (outside available jobs) or args, and must not get one: it is on the hot
-- insert path. So the lists of every job and of final jobs read at most a
-- window of their index per page and match those filters among them;
-- the lists of jobs in flight (pending, available, scheduled, retryable,
-- running) read their partial index, whose size is the work in flight.
--
-- Every filter is optional: queue, kind and args are NULL for none;
-- hide_internal leaves out keel's own jobs (kinds starting with "keel.");
-- args matches jobs whose args contain it (jsonb @>).

-- name: ConsoleJobsNewest :many
-- Jobs of any state, newest first, below the cursor @before: the newest
-- @scan jobs through the primary key backwards, matched against the
-- filters.
SELECT s.id FROM (
    SELECT j.id, j.queue, j.kind, j.args FROM keel.jobs j
    WHERE j.id < @before::bigint
    ORDER BY j.id DESC
    LIMIT @scan::integer
) s
WHERE (sqlc.narg('queue')::text IS NULL OR s.queue = sqlc.narg('queue')::text)
  AND (sqlc.narg('kind')::text IS NULL OR s.kind = sqlc.narg('kind')::text)
  AND (NOT @hide_internal::boolean OR NOT starts_with(s.kind, 'keel.'))
  AND (sqlc.narg('args')::jsonb IS NULL OR s.args @> sqlc.narg('args')::jsonb)
ORDER BY s.id DESC
LIMIT @max_rows::integer;

-- name: ConsoleJobsNewestWindow :one
-- How far ConsoleJobsNewest's window reached: how many jobs it read and the
-- oldest of them, the cursor of the next window (primary key backwards,
-- index only).
SELECT count(*)::integer AS scanned, coalesce(min(w.id), 0)::bigint AS last_id FROM (
    SELECT j.id FROM keel.jobs j
    WHERE j.id < @before::bigint
    ORDER BY j.id DESC
    LIMIT @scan::integer
) w;

-- name: ConsoleJobsFinal :many
-- Jobs in a final state (completed, cancelled, discarded), the most
-- recently finalized first, before @before_at. jobs_finalized_idx (state,
-- finalized_at) has no id to break ties, and a sort of a whole state is
-- what a planner with stale statistics picks for a large LIMIT; so the
-- index is walked backwards in steps of @step rows, a LIMIT small enough
-- that every plan reads the index in its order, with the rest of the last
-- group of equal finalized_at (WITH TIES: a step never splits a group).
-- The walk stops once more than @max_rows jobs matched the filters, after
-- @max_steps steps, or at the end of the state. One row per step: the ids
-- it read that matched, with their finalized_at, and how many it read.
WITH RECURSIVE walk (step, at, ids, ats, matched, scanned) AS (
    SELECT 0, @before_at::timestamptz, '{}'::bigint[], '{}'::timestamptz[], 0::bigint, 0::bigint
    UNION ALL
    SELECT w.step + 1, s.last_at, s.ids, s.ats, w.matched + s.matched, s.scanned
    FROM walk w
    CROSS JOIN LATERAL (
        SELECT min(x.finalized_at) AS last_at,
               coalesce(array_agg(x.id ORDER BY x.finalized_at DESC, x.id DESC) FILTER (WHERE x.matches), '{}') AS ids,
               coalesce(array_agg(x.finalized_at ORDER BY x.finalized_at DESC, x.id DESC) FILTER (WHERE x.matches), '{}') AS ats,
               count(*) FILTER (WHERE x.matches) AS matched,
               count(*) AS scanned
        FROM (
            SELECT j.id, j.finalized_at,
                   (sqlc.narg('queue')::text IS NULL OR j.queue = sqlc.narg('queue')::text)
                   AND (sqlc.narg('kind')::text IS NULL OR j.kind = sqlc.narg('kind')::text)
                   AND (NOT @hide_internal::boolean OR NOT starts_with(j.kind, 'keel.'))
                   AND (sqlc.narg('args')::jsonb IS NULL OR j.args @> sqlc.narg('args')::jsonb) AS matches
            FROM keel.jobs j
            WHERE j.state = @state::keel.job_state AND j.finalized_at IS NOT NULL AND j.finalized_at < w.at
            ORDER BY j.finalized_at DESC
            FETCH FIRST (@step::integer) ROWS WITH TIES
        ) x
    ) s
    WHERE s.last_at IS NOT NULL AND w.matched <= @max_rows::integer AND w.step < @max_steps::integer
)
SELECT walk.at::timestamptz AS last_at, walk.ids::bigint[] AS ids, walk.ats::timestamptz[] AS finalized_at,
       walk.scanned::bigint AS scanned
FROM walk
WHERE walk.step > 0
ORDER BY walk.step;

-- name: ConsoleJobsPending :many
-- Jobs waiting on their dependencies, newest first, below @before
-- (jobs_pending_idx backwards).
SELECT j.id FROM keel.jobs j
WHERE j.state = 'pending' AND j.id < @before::bigint
  AND (sqlc.narg('queue')::text IS NULL OR j.queue = sqlc.narg('queue')::text)
  AND (sqlc.narg('kind')::text IS NULL OR j.kind = sqlc.narg('kind')::text)
  AND (NOT @hide_internal::boolean OR NOT starts_with(j.kind, 'keel.'))
  AND (sqlc.narg('args')::jsonb IS NULL OR j.args @> sqlc.narg('args')::jsonb)
ORDER BY j.id DESC
LIMIT @max_rows::integer;

-- name: ConsoleJobsAvailable :many
-- Available jobs, newest first, below @before: every available job
-- through jobs_claim_idx (whose leading column takes the queue filter),
-- then sorted by id. The cursor is applied outside the CTE, so the planner
-- cannot AND the partial index with a range of the primary key, which
-- would read the whole key below the cursor.
WITH live AS MATERIALIZED (
    SELECT j.id FROM keel.jobs j
    WHERE j.state = 'available'
      AND (sqlc.narg('queue')::text IS NULL OR j.queue = sqlc.narg('queue')::text)
      AND (sqlc.narg('kind')::text IS NULL OR j.kind = sqlc.narg('kind')::text)
      AND (NOT @hide_internal::boolean OR NOT starts_with(j.kind, 'keel.'))
      AND (sqlc.narg('args')::jsonb IS NULL OR j.args @> sqlc.narg('args')::jsonb)
)
SELECT live.id FROM live
WHERE live.id < @before::bigint
ORDER BY live.id DESC
LIMIT @max_rows::integer;

-- name: ConsoleJobsDue :many
-- Scheduled or retryable jobs (@state), newest first, below @before:
-- every one through jobs_due_idx, then sorted by id (the cursor outside the
-- CTE, as in ConsoleJobsAvailable).
WITH live AS MATERIALIZED (
    SELECT j.id FROM keel.jobs j
    WHERE j.state IN ('scheduled', 'retryable') AND j.state = @state::keel.job_state
      AND (sqlc.narg('queue')::text IS NULL OR j.queue = sqlc.narg('queue')::text)
      AND (sqlc.narg('kind')::text IS NULL OR j.kind = sqlc.narg('kind')::text)
      AND (NOT @hide_internal::boolean OR NOT starts_with(j.kind, 'keel.'))
      AND (sqlc.narg('args')::jsonb IS NULL OR j.args @> sqlc.narg('args')::jsonb)
)
SELECT live.id FROM live
WHERE live.id < @before::bigint
ORDER BY live.id DESC
LIMIT @max_rows::integer;

-- name: ConsoleJobsRunning :many
-- Running jobs, newest first, below @before: every one through
-- jobs_heartbeat_idx (a job has a heartbeat exactly while it runs; the
-- range on heartbeat_at, true of every running job, is what makes a
-- planner with stale statistics use it), then sorted by id (the cursor
-- outside the CTE, as in ConsoleJobsAvailable).
WITH live AS MATERIALIZED (
    SELECT j.id FROM keel.jobs j
    WHERE j.state = 'running' AND j.heartbeat_at > '-infinity'::timestamptz
      AND (sqlc.narg('queue')::text IS NULL OR j.queue = sqlc.narg('queue')::text)
      AND (sqlc.narg('kind')::text IS NULL OR j.kind = sqlc.narg('kind')::text)
      AND (NOT @hide_internal::boolean OR NOT starts_with(j.kind, 'keel.'))
      AND (sqlc.narg('args')::jsonb IS NULL OR j.args @> sqlc.narg('args')::jsonb)
)
SELECT live.id FROM live
WHERE live.id < @before::bigint
ORDER BY live.id DESC
LIMIT @max_rows::integer;

-- name: ConsoleJobsByIDs :many
-- The rows of one page, or of a workflow's dependencies outside its window,
-- by primary key.
SELECT j.id, j.kind, j.queue, j.state, j.priority, j.attempt, j.max_attempts, j.progress,
       j.created_at, j.run_at, j.finalized_at,
       coalesce(j.errors -> -1 ->> 'error', '')::text AS last_error,
       j.workflow, j.task, j.depends_on
FROM keel.jobs j
WHERE j.id = ANY (@ids::bigint[]);

-- name: ConsoleJobRuntime :one
-- What a job's page shows that jobs.JobRow leaves out: its owner, last
-- heartbeat and cancel request (primary key).
SELECT j.owner, j.heartbeat_at, j.cancel_requested_at FROM keel.jobs j WHERE j.id = @id;

-- name: ConsoleWorkflowJobs :many
-- The jobs of one workflow insert around job @id. Client.InsertWorkflow
-- writes a workflow's jobs in one transaction (so they share created_at)
-- with ids it reserved together: they are read among the ids @low to @high
-- through the primary key, the nearest @max_rows to @id.
SELECT j.id, j.kind, j.task, j.state, j.depends_on FROM keel.jobs j
WHERE j.id BETWEEN @low::bigint AND @high::bigint
  AND j.workflow = @workflow::text AND j.created_at = @created_at::timestamptz
ORDER BY abs(j.id - @id::bigint), j.id
LIMIT @max_rows::integer;
