-- name: InsertJob :one
-- Inserts one job. A job whose unique key is held by a non-final job is not
-- inserted and no row is returned (the caller's transaction stays usable).
-- The conflict names no index: on the plain table the only unique index a
-- new job can meet is jobs_unique_key_idx; on a partitioned table a unique
-- index cannot span partitions, and a trigger skips the row instead.
INSERT INTO keel.jobs (
    kind, queue, state, priority, args, metadata, tags, max_attempts, timeout_ms,
    run_at, unique_key, depends_on, run_when, workflow, task
) VALUES (
    @kind, @queue, @state, @priority, @args, @metadata, @tags, @max_attempts, @timeout_ms,
    @run_at, sqlc.narg('unique_key'), @depends_on, @run_when, sqlc.narg('workflow'), sqlc.narg('task')
)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: InsertJobsCopy :copyfrom
-- Inserts many jobs with COPY.
INSERT INTO keel.jobs (
    kind, queue, state, priority, args, metadata, tags, max_attempts, timeout_ms, run_at, depends_on, run_when
) VALUES (
    @kind, @queue, @state, @priority, @args, @metadata, @tags, @max_attempts, @timeout_ms, @run_at, @depends_on, @run_when
);

-- name: InsertWorkflowJobs :copyfrom
-- Inserts the jobs of a workflow, whose ids were reserved with ReserveJobIDs.
INSERT INTO keel.jobs (
    id, kind, queue, state, priority, args, metadata, tags, max_attempts, timeout_ms,
    run_at, depends_on, run_when, workflow, task
) VALUES (
    @id, @kind, @queue, @state, @priority, @args, @metadata, @tags, @max_attempts, @timeout_ms,
    @run_at, @depends_on, @run_when, @workflow, @task
);

-- name: ReserveJobIDs :many
-- Takes n ids from keel.jobs' sequence, so a workflow's rows can name each
-- other before they are written.
SELECT nextval(pg_get_serial_sequence('keel.jobs', 'id'))::bigint AS id
FROM generate_series(1, @n::int);

-- name: ActiveJobByUniqueKey :one
SELECT id FROM keel.jobs
WHERE unique_key = @unique_key AND state NOT IN ('completed', 'cancelled', 'discarded');

-- name: CountJobsByIDs :one
SELECT count(*) FROM keel.jobs WHERE id = ANY (@ids::bigint[]);

-- name: ClaimJobs :many
-- Claims up to max available jobs of a queue that is not paused, in
-- (priority, run_at, id) order, in one statement.
WITH picked AS (
    SELECT j.id FROM keel.jobs j
    WHERE j.state = 'available' AND j.queue = @queue
      AND NOT EXISTS (SELECT 1 FROM keel.job_queues q WHERE q.name = @queue AND q.paused_at IS NOT NULL)
    ORDER BY j.priority, j.run_at, j.id
    LIMIT @max
    FOR UPDATE SKIP LOCKED
)
UPDATE keel.jobs j SET
    state = 'running',
    attempt = j.attempt + 1,
    attempted_at = COALESCE(sqlc.narg('now')::timestamptz, now()),
    heartbeat_at = COALESCE(sqlc.narg('now')::timestamptz, now()),
    owner = @owner
FROM picked
WHERE j.id = picked.id
RETURNING j.*;

-- name: CompleteJobs :many
-- Marks a batch of running jobs completed and returns the ids it completed.
-- Each (id, attempt) pair guards against completing an attempt that was
-- rescued and run again elsewhere.
-- No partial index has a predicate that state = 'running' implies, so each
-- pair reaches its row by primary key (an index of running jobs let a
-- planner that believed few jobs run scan all of them once per pair).
UPDATE keel.jobs j SET
    state = 'completed',
    finalized_at = COALESCE(sqlc.narg('now')::timestamptz, now()),
    progress = 100,
    owner = NULL,
    heartbeat_at = NULL
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@attempts::int[]) AS attempt) AS c
WHERE j.id = c.id AND j.attempt = c.attempt AND j.state = 'running'
RETURNING j.id;

-- name: FinishAttempt :execrows
-- Ends a running attempt that did not complete: retryable, scheduled (a
-- snooze, which gives the attempt back), cancelled or discarded.
UPDATE keel.jobs SET
    state = @state::keel.job_state,
    run_at = COALESCE(sqlc.narg('run_at')::timestamptz, run_at),
    attempt = attempt - @refund::int,
    errors = CASE WHEN sqlc.narg('error')::jsonb IS NULL THEN errors ELSE errors || sqlc.narg('error')::jsonb END,
    finalized_at = CASE WHEN @state::keel.job_state IN ('completed', 'cancelled', 'discarded')
        THEN COALESCE(sqlc.narg('now')::timestamptz, now()) END,
    owner = NULL,
    heartbeat_at = NULL
WHERE id = @id AND attempt = @attempt AND state = 'running';

-- name: Heartbeat :many
-- Refreshes the heartbeat of the jobs a client is running — the ones it
-- names, not every row it owns, so a job whose outcome it lost is rescued —
-- and returns those whose cancellation was requested.
UPDATE keel.jobs SET heartbeat_at = COALESCE(sqlc.narg('now')::timestamptz, now())
WHERE id = ANY (@ids::bigint[]) AND owner = @owner AND state = 'running'
RETURNING id, (cancel_requested_at IS NOT NULL)::boolean AS cancel_requested;

-- name: RescueJobs :many
-- Returns running jobs whose owner stopped heartbeating to retryable (or
-- discarded when out of attempts, cancelled when a cancel was requested).
WITH stuck AS (
    SELECT id FROM keel.jobs
    WHERE heartbeat_at < @stale_before::timestamptz AND state = 'running'
    ORDER BY heartbeat_at
    LIMIT @max
    FOR UPDATE SKIP LOCKED
)
UPDATE keel.jobs j SET
    state = (CASE
        WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
        WHEN j.attempt >= j.max_attempts THEN 'discarded'
        ELSE 'retryable' END)::keel.job_state,
    run_at = @now::timestamptz,
    finalized_at = CASE WHEN j.cancel_requested_at IS NOT NULL OR j.attempt >= j.max_attempts
        THEN @now::timestamptz END,
    errors = j.errors || jsonb_build_object(
        'attempt', j.attempt, 'at', @now::timestamptz,
        'error', 'keel: owner ' || COALESCE(j.owner, '?') || ' stopped heartbeating; job rescued'),
    owner = NULL,
    heartbeat_at = NULL
FROM stuck
WHERE j.id = stuck.id
RETURNING j.id, j.queue, j.state;

-- name: PromoteDueJobs :many
-- Makes scheduled and retryable jobs whose run_at has come available.
WITH due AS (
    SELECT id FROM keel.jobs
    WHERE state IN ('scheduled', 'retryable') AND run_at <= @now::timestamptz
    ORDER BY run_at
    LIMIT @max
    FOR UPDATE SKIP LOCKED
)
UPDATE keel.jobs j SET state = 'available'
FROM due
WHERE j.id = due.id
RETURNING j.queue;

-- name: ResolveDependencies :many
-- Moves pending jobs whose dependencies are settled on: to available (or
-- scheduled) when their run condition holds, else to cancelled. A job that
-- needs success is cancelled as soon as one dependency failed.
WITH settled AS (
    SELECT p.id,
        CASE p.run_when
            WHEN 'success' THEN bool_and(d.state = 'completed')
            WHEN 'failure' THEN bool_or(d.state IN ('cancelled', 'discarded'))
            ELSE true
        END AS go
    FROM keel.jobs p
    JOIN keel.jobs d ON d.id = ANY (p.depends_on)
    WHERE p.state = 'pending'
    GROUP BY p.id
    HAVING bool_and(d.state IN ('completed', 'cancelled', 'discarded'))
        OR (p.run_when = 'success' AND bool_or(d.state IN ('cancelled', 'discarded')))
    LIMIT @max
)
UPDATE keel.jobs j SET
    state = (CASE
        WHEN NOT settled.go THEN 'cancelled'
        WHEN j.run_at > @now::timestamptz THEN 'scheduled'
        ELSE 'available' END)::keel.job_state,
    finalized_at = CASE WHEN settled.go THEN NULL ELSE @now::timestamptz END,
    errors = CASE WHEN settled.go THEN j.errors ELSE j.errors || jsonb_build_object(
        'attempt', j.attempt, 'at', @now::timestamptz,
        'error', 'keel: cancelled because its dependencies did not meet its run condition (' || j.run_when::text || ')') END
FROM settled
WHERE j.id = settled.id AND j.state = 'pending'
RETURNING j.id, j.queue, j.state;

-- name: DeleteFinalizedJobs :execrows
-- Deletes up to max jobs in a final state that were finalized before the
-- cutoff, oldest first. The ids are gathered into an array so the delete
-- reaches each row by primary key (a semi-join may be planned as a scan of
-- the whole table), and the outer conditions leave alone a job retried
-- while the statement ran.
DELETE FROM keel.jobs
WHERE id = ANY (ARRAY(
    SELECT f.id FROM keel.jobs f
    WHERE f.state = @state::keel.job_state AND f.finalized_at < @before::timestamptz
    ORDER BY f.finalized_at
    LIMIT @max
))
AND state = @state::keel.job_state AND finalized_at < @before::timestamptz;

-- name: CancelJob :one
-- Cancels a job that is not final: a queued one at once; a running one gets
-- cancel_requested_at, and its owner cancels its context.
UPDATE keel.jobs SET
    state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finalized_at = CASE WHEN state = 'running' THEN finalized_at ELSE COALESCE(sqlc.narg('now')::timestamptz, now()) END,
    cancel_requested_at = COALESCE(cancel_requested_at, sqlc.narg('now')::timestamptz, now())
WHERE id = @id AND state NOT IN ('completed', 'cancelled', 'discarded')
RETURNING *;

-- name: RetryJob :one
-- Makes a job available again at once, giving it one more attempt when it
-- has used all of them. Running jobs and jobs waiting on dependencies are
-- left alone.
UPDATE keel.jobs SET
    state = 'available',
    run_at = COALESCE(sqlc.narg('now')::timestamptz, now()),
    finalized_at = NULL,
    cancel_requested_at = NULL,
    max_attempts = GREATEST(max_attempts, attempt + 1)
WHERE id = @id AND state NOT IN ('running', 'pending')
RETURNING *;

-- name: LockJobForDelete :one
-- Locks a job that is to be deleted and says whether it may be: its state,
-- and whether a pending job waits on it (jobs_pending_idx: the cost follows
-- the jobs waiting on dependencies, as ResolveDependencies' does).
SELECT j.state, EXISTS (
    SELECT 1 FROM keel.jobs p WHERE p.state = 'pending' AND j.id = ANY (p.depends_on)
)::boolean AS has_dependents
FROM keel.jobs j
WHERE j.id = @id
FOR UPDATE OF j;

-- name: DeleteJob :one
DELETE FROM keel.jobs WHERE id = @id RETURNING *;

-- name: GetJob :one
SELECT * FROM keel.jobs WHERE id = @id;

-- name: SetQueuePaused :exec
INSERT INTO keel.job_queues (name, paused_at, updated_at)
VALUES (@name, sqlc.narg('paused_at')::timestamptz, now())
ON CONFLICT (name) DO UPDATE SET paused_at = EXCLUDED.paused_at, updated_at = now();

-- name: QueuePaused :one
SELECT EXISTS (SELECT 1 FROM keel.job_queues WHERE name = @name AND paused_at IS NOT NULL);

-- name: ClaimScheduleTick :one
-- Records that the schedule's job for this tick is being inserted; returns
-- no row when this tick (or a later one) was already taken. Concurrent
-- callers wait on the row lock, so exactly one of them gets the tick.
INSERT INTO keel.job_schedules (name, last_tick, updated_at)
VALUES (@name, @tick::timestamptz, now())
ON CONFLICT (name) DO UPDATE SET last_tick = EXCLUDED.last_tick, updated_at = now()
WHERE keel.job_schedules.last_tick < EXCLUDED.last_tick
RETURNING name;

-- name: ScheduleLastTick :one
SELECT last_tick FROM keel.job_schedules WHERE name = @name;

-- name: RecordProgress :execrows
UPDATE keel.jobs SET progress = @progress
WHERE id = @id AND attempt = @attempt AND state = 'running';

-- name: RecordOutput :execrows
UPDATE keel.jobs SET output = @output
WHERE id = @id AND attempt = @attempt AND state = 'running';

-- name: DependencyOutputs :many
-- The dependencies of a job, with their outputs.
SELECT d.id, d.kind, d.task, d.state, d.output
FROM keel.jobs j
JOIN keel.jobs d ON d.id = ANY (j.depends_on)
WHERE j.id = @id
ORDER BY d.id;

-- name: CountJobs :one
-- Counts the jobs in a state, or all jobs when state is NULL.
SELECT count(*) FROM keel.jobs
WHERE sqlc.narg('state')::keel.job_state IS NULL OR state = sqlc.narg('state')::keel.job_state;

-- name: ListJobs :many
-- Jobs for people, newest first, optionally of one state, queue and kind.
-- With hide_internal, keel's own jobs (kinds starting with "keel.", such as
-- the saga engine's keel.saga.run) are left out, as the CLI does unless
-- asked.
SELECT * FROM keel.jobs
WHERE (sqlc.narg('state')::keel.job_state IS NULL OR state = sqlc.narg('state')::keel.job_state)
  AND (sqlc.narg('queue')::text IS NULL OR queue = sqlc.narg('queue')::text)
  AND (sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind')::text)
  AND (sqlc.narg('hide_internal')::boolean IS NOT TRUE OR NOT starts_with(kind, 'keel.'))
ORDER BY id DESC
LIMIT sqlc.arg('max_rows')::integer;

-- name: ListQueues :many
-- Every queue that has jobs or a pause record, with its pause state.
SELECT q.name::text AS name, (p.paused_at IS NOT NULL)::boolean AS paused
FROM (SELECT DISTINCT queue AS name FROM keel.jobs UNION SELECT name FROM keel.job_queues) q
LEFT JOIN keel.job_queues p ON p.name = q.name
ORDER BY q.name;
