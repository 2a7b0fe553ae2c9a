-- Queries the console's overview and queues pages run, several times a
-- minute while a page is open. Each reads through an index, and its cost
-- follows the work in flight and the last hour, never the history.

-- name: ConsoleSerialPlans :exec
-- Plans the rest of the transaction without parallel workers: the
-- console's statements read a few live rows or a page, and starting
-- workers costs more than that (tens of milliseconds on a small server,
-- when a planner's estimate tips a union of partial-index reads into a
-- parallel plan).
SELECT set_config('max_parallel_workers_per_gather', '0', true);

-- name: ConsoleJobCounts :many
-- Jobs per queue and state, for every job not yet final, each state
-- through its own partial index. Running jobs are read through
-- jobs_heartbeat_idx (heartbeat_at is set exactly while a job runs); the
-- range on heartbeat_at, true of every running job, is what makes a planner
-- without statistics pick that index over a scan of the table.
SELECT queue, state, count(*)::bigint AS jobs, min(run_at)::timestamptz AS oldest_run_at
FROM keel.jobs WHERE state = 'pending' GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*)::bigint, min(run_at)::timestamptz
FROM keel.jobs WHERE state IN ('scheduled', 'retryable') GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*)::bigint, min(run_at)::timestamptz
FROM keel.jobs WHERE state = 'available' GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*)::bigint, min(run_at)::timestamptz
FROM keel.jobs WHERE state = 'running' AND heartbeat_at > '-infinity'::timestamptz GROUP BY queue, state;

-- name: ConsoleDeadJobs :one
-- Discarded jobs of all time: the dead letters of keel.jobs, counted in
-- jobs_finalized_idx alone.
SELECT count(*)::bigint FROM keel.jobs WHERE state = 'discarded' AND finalized_at IS NOT NULL;

-- name: ConsoleQueuePauses :many
-- Queues that have a pause record, and whether they are paused now.
SELECT name, paused_at FROM keel.job_queues ORDER BY name;

-- name: ConsoleJobMinutes :many
-- The last hour, minute by minute: jobs that became completed, discarded
-- or cancelled in each minute, and the jobs not yet final at its end. The
-- second is worked out from the jobs not final now and those that ended in
-- the hour, so no sample is kept anywhere. Its cost follows the last hour's
-- finished jobs (jobs_finalized_idx, then their rows for created_at): the
-- console runs it at most once per chart interval, however many pages are
-- open.
WITH span AS (
    SELECT date_trunc('minute', now()) - interval '59 minutes' AS start
), closed AS (
    SELECT j.state, j.created_at, j.finalized_at
    FROM keel.jobs j
    WHERE j.state IN ('completed', 'cancelled', 'discarded')
      AND j.finalized_at >= date_trunc('minute', now()) - interval '59 minutes'
), unfinished AS (
    SELECT created_at FROM keel.jobs WHERE state = 'pending'
    UNION ALL SELECT created_at FROM keel.jobs WHERE state IN ('scheduled', 'retryable')
    UNION ALL SELECT created_at FROM keel.jobs WHERE state = 'available'
    UNION ALL SELECT created_at FROM keel.jobs WHERE state = 'running' AND heartbeat_at > '-infinity'::timestamptz
), changes AS (
    SELECT greatest(date_trunc('minute', created_at), (SELECT start FROM span)) AS minute, 1 AS delta, ''::text AS ended
    FROM unfinished
    UNION ALL
    SELECT greatest(date_trunc('minute', created_at), (SELECT start FROM span)), 1, ''
    FROM closed
    UNION ALL
    SELECT date_trunc('minute', finalized_at), -1, state::text
    FROM closed
), by_minute AS (
    SELECT minute,
           count(*) FILTER (WHERE ended = 'completed') AS completed,
           count(*) FILTER (WHERE ended = 'discarded') AS discarded,
           count(*) FILTER (WHERE ended = 'cancelled') AS cancelled,
           sum(delta) AS delta
    FROM changes
    GROUP BY minute
)
SELECT m.minute::timestamptz AS minute,
       coalesce(b.completed, 0)::bigint AS completed,
       coalesce(b.discarded, 0)::bigint AS discarded,
       coalesce(b.cancelled, 0)::bigint AS cancelled,
       (sum(coalesce(b.delta, 0)) OVER (ORDER BY m.minute))::bigint AS unfinished
FROM generate_series((SELECT start FROM span), date_trunc('minute', now()), interval '1 minute') AS m(minute)
LEFT JOIN by_minute b ON b.minute = m.minute
ORDER BY m.minute;

-- name: ConsoleOutboxCounts :one
-- The outbox now: messages waiting (outbox_pending_idx), the age of the
-- oldest, dead letters (outbox_dead_idx) and messages delivered in the last
-- hour (outbox_delivered_idx).
SELECT (SELECT count(*) FROM keel.outbox WHERE state = 'pending')::bigint AS pending,
       (SELECT created_at FROM keel.outbox WHERE state = 'pending' ORDER BY seq LIMIT 1)::timestamptz AS oldest_pending,
       (SELECT count(*) FROM keel.outbox WHERE state = 'dead')::bigint AS dead,
       (SELECT count(*) FROM keel.outbox WHERE state = 'delivered' AND delivered_at > now() - interval '1 hour')::bigint AS delivered_last_hour;

-- name: ConsoleOutboxMinutes :many
-- The last hour, minute by minute: messages delivered in each minute
-- (outbox_delivered_idx alone).
WITH span AS (
    SELECT date_trunc('minute', now()) - interval '59 minutes' AS start
), delivered AS (
    SELECT date_trunc('minute', delivered_at) AS minute, count(*) AS n
    FROM keel.outbox
    WHERE state = 'delivered' AND delivered_at >= (SELECT start FROM span)
    GROUP BY 1
)
SELECT m.minute::timestamptz AS minute, coalesce(d.n, 0)::bigint AS delivered
FROM generate_series((SELECT start FROM span), date_trunc('minute', now()), interval '1 minute') AS m(minute)
LEFT JOIN delivered d ON d.minute = m.minute
ORDER BY m.minute;

-- name: ConsoleSagaCounts :many
-- Workflow runs per workflow and status: every run not yet finished, and
-- the runs started in the last hour that finished (saga_runs_status_idx).
SELECT workflow, status, count(*)::bigint AS runs
FROM keel.saga_runs
WHERE status IN ('pending', 'running', 'waiting', 'compensating')
GROUP BY workflow, status
UNION ALL
SELECT workflow, status, count(*)::bigint
FROM keel.saga_runs
WHERE status IN ('succeeded', 'failed', 'cancelled') AND created_at > now() - interval '1 hour'
GROUP BY workflow, status;
