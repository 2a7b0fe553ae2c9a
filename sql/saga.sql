-- name: InsertRun :one
-- Starts a run; a run id already taken inserts nothing and returns no row.
-- The deadline is the database's now() plus the timeout (none when NULL), so
-- it is on the clock of every other time keel stores.
INSERT INTO keel.saga_runs (id, workflow, version, queue, input, parent_id, parent_seq, deadline)
VALUES (@id, @workflow, @version, @queue, @input, sqlc.narg('parent_id'), sqlc.narg('parent_seq'),
    now() + sqlc.narg('timeout_us')::bigint * interval '1 microsecond')
ON CONFLICT (id) DO NOTHING
RETURNING *;

-- name: StartRunWithJob :one
-- InsertRun and the insert of the run's first job in one statement, so a
-- lone start is one round trip and one commit: the job is the one
-- jobs.Client.Insert would write (kind, metadata and attempts as given, the
-- run's queue, args {"run_id", "generation"} of the new run). With owner,
-- a jobs client that reserved a worker for it, the job is written claimed
-- by that client (running, attempt 1, as ClaimJobs would leave it) unless
-- its queue is paused, and comes back as claimed_job, to run at once
-- without a claim, with db_now, the database's clock as in ClaimRun.
-- notify sends the jobs' insert notification for the queue of a job left
-- available (the WHERE names notified, without which it would not run). The run comes back as JSON (output and error, NULL at
-- a start, left out). A run id already taken inserts nothing and returns
-- no row.
WITH run AS (
    INSERT INTO keel.saga_runs (id, workflow, version, queue, input, deadline)
    VALUES (@id, @workflow, @version, @queue, @input,
        now() + sqlc.narg('timeout_us')::bigint * interval '1 microsecond')
    ON CONFLICT (id) DO NOTHING
    RETURNING *
), claim AS MATERIALIZED (
    SELECT sqlc.narg('owner')::text IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM keel.job_queues q WHERE q.name = @queue AND q.paused_at IS NOT NULL) AS claimed
), job AS (
    INSERT INTO keel.jobs (kind, queue, args, metadata, max_attempts, state, attempt, attempted_at, heartbeat_at, owner)
    SELECT @job_kind::text, run.queue, jsonb_build_object('run_id', run.id, 'generation', run.generation),
           @job_metadata::jsonb, @job_max_attempts::int,
           (CASE WHEN claim.claimed THEN 'running' ELSE 'available' END)::keel.job_state,
           CASE WHEN claim.claimed THEN 1 ELSE 0 END,
           CASE WHEN claim.claimed THEN now() END,
           CASE WHEN claim.claimed THEN now() END,
           CASE WHEN claim.claimed THEN sqlc.narg('owner')::text END
    FROM run CROSS JOIN claim
    RETURNING *
), notified AS (
    SELECT pg_notify(@channel::text, job.queue) FROM job WHERE @notify::boolean AND job.state = 'available'
)
SELECT (to_jsonb(run) - 'output' - 'error')::jsonb AS run,
    (SELECT to_jsonb(job) - 'output' FROM job WHERE job.state = 'running')::jsonb AS claimed_job,
    clock_timestamp()::timestamptz AS db_now
FROM run
WHERE (SELECT count(*) FROM notified) >= 0;

-- name: StartRunsWithJobs :many
-- StartRunWithJob for many runs at once, in one statement: runs is a JSON
-- array of {"id", "workflow", "version", "queue", "input", "timeout_us",
-- "job_metadata", "claim"}. Each new run gets its first job, written as
-- StartRunWithJob writes it with the item's job_metadata, claimed by owner
-- when the item says claim; with notify, the jobs' insert notification
-- goes out for each queue that got an available one. Of the items of one
-- id only the first is written; an id already taken inserts nothing.
-- Returns the runs it inserted, as StartRunWithJob does.
WITH input AS (
    SELECT e->>'id' AS id, e->>'workflow' AS workflow, (e->>'version')::int AS version, e->>'queue' AS queue,
        e->'input' AS input, (e->>'timeout_us')::bigint AS timeout_us, e->'job_metadata' AS job_metadata,
        (e->'claim' = 'true') IS TRUE AND sqlc.narg('owner')::text IS NOT NULL AS claim,
        row_number() OVER (PARTITION BY e->>'id' ORDER BY a.n) = 1 AS first
    FROM jsonb_array_elements(@runs::jsonb) WITH ORDINALITY AS a(e, n)
), run AS (
    INSERT INTO keel.saga_runs (id, workflow, version, queue, input, deadline)
    SELECT input.id, input.workflow, input.version, input.queue, input.input,
        now() + input.timeout_us * interval '1 microsecond'
    FROM input WHERE input.first
    ON CONFLICT (id) DO NOTHING
    RETURNING *
), claim AS MATERIALIZED (
    SELECT run.id, run.queue, run.generation, input.job_metadata,
        input.claim AND (SELECT q.paused_at FROM keel.job_queues q WHERE q.name = run.queue) IS NULL AS claimed
    FROM run JOIN input ON input.id = run.id AND input.first
), job AS (
    INSERT INTO keel.jobs (kind, queue, args, metadata, max_attempts, state, attempt, attempted_at, heartbeat_at, owner)
    SELECT @job_kind::text, claim.queue, jsonb_build_object('run_id', claim.id, 'generation', claim.generation),
           claim.job_metadata, @job_max_attempts::int,
           (CASE WHEN claim.claimed THEN 'running' ELSE 'available' END)::keel.job_state,
           CASE WHEN claim.claimed THEN 1 ELSE 0 END,
           CASE WHEN claim.claimed THEN now() END,
           CASE WHEN claim.claimed THEN now() END,
           CASE WHEN claim.claimed THEN sqlc.narg('owner')::text END
    FROM claim
    RETURNING *
), notified AS (
    SELECT pg_notify(@channel::text, q.queue)
    FROM (SELECT DISTINCT job.queue FROM job WHERE job.state = 'available') AS q WHERE @notify::boolean
)
SELECT (to_jsonb(run) - 'output' - 'error')::jsonb AS run,
    (CASE WHEN job.state = 'running' THEN to_jsonb(job) - 'output' END)::jsonb AS claimed_job,
    clock_timestamp()::timestamptz AS db_now
FROM run JOIN job ON job.args->>'run_id' = run.id
WHERE (SELECT count(*) FROM notified) >= 0;

-- name: GetRun :one
SELECT * FROM keel.saga_runs WHERE id = @id;

-- name: GetRuns :many
-- The runs of the ids that exist: the reads of the Awaits made at once go
-- together.
SELECT * FROM keel.saga_runs WHERE id = ANY (@ids::text[]);

-- name: ClaimRun :one
-- An executor takes a run for the job of its current generation, and reads
-- its history in the same round trip: the epoch is bumped, which fences out
-- any older executor's checkpoints. A job of an older generation (the run
-- parked or woke since) or a final run gets no row. db_now is the
-- database's clock, which the executor keeps (advanced by its monotonic
-- clock) for every time it stores or compares.
WITH claimed AS (
    UPDATE keel.saga_runs SET
        epoch = epoch + 1,
        status = CASE WHEN status IN ('pending', 'waiting') THEN 'running' ELSE status END,
        owner = @owner,
        resumes = resumes + 1,
        started_at = COALESCE(started_at, now()),
        wake_at = NULL,
        wait_reason = NULL,
        updated_at = now()
    WHERE id = @id AND generation = @generation
      AND status IN ('pending', 'running', 'waiting', 'compensating')
    RETURNING *
)
SELECT claimed.id, claimed.workflow, claimed.version, claimed.queue, claimed.input, claimed.parent_id,
    claimed.epoch, claimed.deadline, claimed.cancel_requested_at,
    (SELECT COALESCE(jsonb_agg(jsonb_build_object(
            'seq', s.seq, 'name', s.name, 'kind', s.kind, 'status', s.status,
            'output', s.output, 'error', s.error, 'attempts', s.attempts) ORDER BY s.seq), '[]')
     FROM keel.saga_steps s WHERE s.run_id = claimed.id)::jsonb AS history,
    clock_timestamp()::timestamptz AS db_now
FROM claimed;

-- name: ReadPendingRuns :many
-- The first attempt of a pending run's job takes the run without a write:
-- no other executor of the run can exist (a pending run has one job, and
-- only a rescued job — attempt 2 on — can have a live earlier attempt), so
-- the epoch needs no bump. Its first checkpoint marks the run running. The
-- runs of many such jobs, claimed together, are read by one statement:
-- runs is a JSON array of {"id", "generation"}. The status test is written
-- as (… = 'pending') IS TRUE, which no index can search, so each run is
-- found by id: as a plain status = 'pending', a planner that believed few
-- runs were pending searched the status index and read every pending run.
-- e ? 'id' keeps the runs read by id in a small table too (see CommitMany).
-- db_now is as in ClaimRun.
SELECT r.id, r.workflow, r.version, r.queue, r.input, r.parent_id,
    r.epoch, r.deadline, r.cancel_requested_at,
    (SELECT COALESCE(jsonb_agg(jsonb_build_object(
            'seq', s.seq, 'name', s.name, 'kind', s.kind, 'status', s.status,
            'output', s.output, 'error', s.error, 'attempts', s.attempts) ORDER BY s.seq), '[]')
     FROM keel.saga_steps s WHERE s.run_id = r.id)::jsonb AS history,
    clock_timestamp()::timestamptz AS db_now
FROM jsonb_array_elements(@runs::jsonb) AS e
JOIN keel.saga_runs r ON r.id = e->>'id'
WHERE e ? 'id' AND r.generation = (e->>'generation')::bigint AND (r.status = 'pending') IS TRUE;

-- name: LoadHistory :many
-- A run's whole history, read once per resume.
SELECT * FROM keel.saga_steps WHERE run_id = @run_id ORDER BY seq;

-- name: Checkpoint :one
-- Records a step's outcome in one statement that also fences: it writes
-- only while the run's epoch is the executor's, and never over a recorded
-- outcome (only a waiting step, a timer or a signal wait, may be ended).
-- With publish it also sets the run's published value of that name, and it
-- marks a run taken by ReadPendingRun running, started when its first step
-- started. It returns whether a cancel was requested; no row means the
-- executor was fenced out. Both times are the database's: started_at is the
-- executor's reading of that clock when the step began (the statement's
-- when not given; never later than the statement's, as the reading is an
-- estimate), and finished_at is set when the step ends; a waiting step has
-- none.
WITH run AS (
    SELECT r.id, r.cancel_requested_at, r.status FROM keel.saga_runs r
    WHERE r.id = @run_id AND r.epoch = @epoch
), ins AS (
    INSERT INTO keel.saga_steps AS s (run_id, seq, name, kind, status, output, error, attempts, started_at, finished_at)
    SELECT run.id, @seq, @name, @kind, @status, sqlc.narg('output')::jsonb, sqlc.narg('error'), @attempts,
        LEAST(COALESCE(sqlc.narg('started_at')::timestamptz, clock_timestamp()), clock_timestamp()),
        CASE WHEN @status::keel.saga_step_status = 'waiting' THEN NULL ELSE clock_timestamp() END
    FROM run
    ON CONFLICT (run_id, seq) DO UPDATE SET
        status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error,
        attempts = EXCLUDED.attempts, finished_at = EXCLUDED.finished_at
    WHERE s.status = 'waiting'
    RETURNING s.run_id, s.seq, s.output, s.started_at
), val AS (
    INSERT INTO keel.saga_values (run_id, name, value, seq)
    SELECT ins.run_id, @name, ins.output, ins.seq FROM ins WHERE @publish::boolean
    ON CONFLICT (run_id, name) DO UPDATE SET value = EXCLUDED.value, seq = EXCLUDED.seq, updated_at = now()
), started AS (
    UPDATE keel.saga_runs r SET
        status = 'running', owner = @owner, resumes = r.resumes + 1,
        started_at = COALESCE(r.started_at, ins.started_at), updated_at = now()
    FROM ins, run
    WHERE r.id = ins.run_id AND run.status = 'pending'
)
SELECT (run.cancel_requested_at IS NOT NULL)::boolean AS cancel_requested
FROM run JOIN ins ON ins.run_id = run.id;

-- name: CommitMany :many
-- The group commit of an engine: the checkpoints of many runs' steps and
-- the ends of many runs, in one statement, one transaction and one WAL
-- flush. A run is never in both: its execution writes one request at a
-- time, and ends once its last step returned.
--
-- steps is a JSON array of checkpoints with the fields of Checkpoint
-- (run_id, epoch, seq, name, kind, status, output, error, attempts,
-- started_at, publish). Each step is fenced by its own run's epoch. A row
-- comes back for each step written, with its run_id, seq and epoch and
-- whether a cancel was requested; a step with none was refused (its
-- executor was fenced out, or its position is taken). The pending test is
-- written as (…) IS TRUE so that each run is found by id, not by the status
-- index (see ReadPendingRuns).
--
-- ends is a JSON array of {"id", "epoch", "status", "output", "error",
-- "job_id", "job_attempt"}: FinishRun for runs none of which has a parent
-- to wake or children to cancel, each completing the job that executed it;
-- with notify, channel is notified. A row comes back for each run ended,
-- with the run as stored in ended (JSON with the columns as keys; output
-- and error only when not NULL); a run the executor no longer holds is left
-- as it is. A job is completed while its attempt runs, whether or not its
-- run was ended here: an executor fenced out of its run has nothing left
-- to do, as its job's handler would return.
--
-- Each array is read WHERE its items have their key (e ? 'run_id', e ?
-- 'id'), which every item has: the planner takes such a filter to keep few
-- items, so it reads each run and job by its key however small or
-- unanalyzed the tables are. Without it, it counts on 100 items and, in a
-- table of a few thousand rows or one whose statistics date from when it
-- was empty, hash-joins them to a sequential scan of every run and every
-- job, and a prepared statement keeps that plan. For the same reason no
-- two of the arrays' derived sets are joined to each other (that would be
-- a nested loop over both): each is joined to a table, by key.
WITH input AS (
    SELECT e->>'run_id' AS run_id, (e->>'epoch')::bigint AS epoch,
        (e->>'seq')::int AS seq, e->>'name' AS name, e->>'kind' AS kind,
        (e->>'status')::keel.saga_step_status AS status, e->'output' AS output, e->>'error' AS error,
        (e->>'attempts')::int AS attempts, (e->>'started_at')::timestamptz AS started_at,
        COALESCE((e->>'publish')::boolean, false) AS publish
    FROM jsonb_array_elements(@steps::jsonb) AS e
    WHERE e ? 'run_id'
), ins AS (
    INSERT INTO keel.saga_steps AS s (run_id, seq, name, kind, status, output, error, attempts, started_at, finished_at)
    SELECT input.run_id, input.seq, input.name, input.kind, input.status, input.output, input.error, input.attempts,
        LEAST(COALESCE(input.started_at, clock_timestamp()), clock_timestamp()),
        CASE WHEN input.status = 'waiting' THEN NULL ELSE clock_timestamp() END
    FROM input JOIN keel.saga_runs r ON r.id = input.run_id AND r.epoch = input.epoch
    ON CONFLICT (run_id, seq) DO UPDATE SET
        status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error,
        attempts = EXCLUDED.attempts, finished_at = EXCLUDED.finished_at
    WHERE s.status = 'waiting'
    RETURNING s.run_id, s.seq, s.name, s.output, s.started_at
), val AS (
    INSERT INTO keel.saga_values (run_id, name, value, seq)
    SELECT DISTINCT ON (ins.run_id, ins.name) ins.run_id, ins.name, ins.output, ins.seq
    FROM ins JOIN input ON input.run_id = ins.run_id AND input.seq = ins.seq
    WHERE input.publish
    ORDER BY ins.run_id, ins.name, ins.seq DESC
    ON CONFLICT (run_id, name) DO UPDATE SET value = EXCLUDED.value, seq = EXCLUDED.seq, updated_at = now()
), started AS (
    UPDATE keel.saga_runs r SET
        status = 'running', owner = @owner, resumes = r.resumes + 1,
        started_at = COALESCE(r.started_at, first.started_at), updated_at = now()
    FROM (SELECT ins.run_id, min(ins.started_at) AS started_at FROM ins GROUP BY ins.run_id) AS first
    WHERE r.id = first.run_id AND (r.status = 'pending') IS TRUE
), end_input AS (
    SELECT e->>'id' AS id, (e->>'epoch')::bigint AS epoch, (e->>'status')::keel.saga_run_status AS status,
        e->'output' AS output, e->'error' AS error,
        (e->>'job_id')::bigint AS job_id, (e->>'job_attempt')::int AS job_attempt
    FROM jsonb_array_elements(@ends::jsonb) AS e
    WHERE e ? 'id'
), ended AS (
    UPDATE keel.saga_runs r SET
        status = end_input.status,
        output = end_input.output,
        error = end_input.error,
        owner = NULL,
        wake_at = NULL,
        wait_reason = NULL,
        last_error = NULL,
        finished_at = now(),
        updated_at = now()
    FROM end_input
    WHERE r.id = end_input.id AND r.epoch = end_input.epoch
    RETURNING r.*
), completed AS (
    UPDATE keel.jobs j SET
        state = 'completed', finalized_at = now(), progress = 100, owner = NULL, heartbeat_at = NULL
    FROM end_input
    WHERE j.id = end_input.job_id AND j.attempt = end_input.job_attempt AND j.state = 'running'
), notified AS (
    SELECT pg_notify(@channel::text, @payload::text) WHERE @notify::boolean
)
-- The runs as the statement began: the epoch each written step was fenced by.
SELECT ins.run_id, ins.seq, r.epoch, (r.cancel_requested_at IS NOT NULL)::boolean AS cancel_requested,
    NULL::jsonb AS ended
FROM ins JOIN keel.saga_runs r ON r.id = ins.run_id
UNION ALL
SELECT ended.id, 0, ended.epoch, false,
    -- the run as JSON; a jsonb column that is NULL is left out, so that it
    -- reads as no value rather than as JSON null
    to_jsonb(ended.*) - array_remove(ARRAY[
        CASE WHEN ended.output IS NULL THEN 'output' END,
        CASE WHEN ended.error IS NULL THEN 'error' END], NULL)
FROM ended LEFT JOIN notified ON true;

-- name: LockRun :one
-- Locks the run for a wait (park) decision while the executor still holds
-- its epoch; no row means it was fenced out.
SELECT (cancel_requested_at IS NOT NULL)::boolean AS cancel_requested
FROM keel.saga_runs WHERE id = @id AND epoch = @epoch
FOR UPDATE;

-- name: ConsumeSignal :one
-- Takes the oldest unconsumed signal of a name for the wait at seq.
UPDATE keel.saga_signals SET consumed_seq = @seq, consumed_at = now()
WHERE id = (
    SELECT g.id FROM keel.saga_signals g
    WHERE g.run_id = @run_id AND g.name = @name AND g.consumed_seq IS NULL
    ORDER BY g.id LIMIT 1
    FOR UPDATE
)
RETURNING value;

-- name: TakeSignal :one
-- A signal wait's quick path, in one statement: when the run's oldest
-- unconsumed signal of the name is there, records the wait at seq completed
-- with the signal's value and consumes the signal. The executor must still
-- hold the run (its epoch) and no cancel may be requested; the run's row is
-- locked as ConsumeSignal's transaction locks it. The signal is consumed
-- only when the wait was recorded, so a refused record (the position taken)
-- loses no signal. Like Checkpoint, it marks a run taken by
-- ReadPendingRuns running. No row: nothing was taken, and the wait goes the
-- transactional way (LockRun, ConsumeSignal, Checkpoint), which parks.
WITH run AS (
    SELECT r.id FROM keel.saga_runs r
    WHERE r.id = @run_id AND r.epoch = @epoch AND r.cancel_requested_at IS NULL
    FOR UPDATE
), pick AS (
    SELECT g.id, g.value FROM keel.saga_signals g
    WHERE g.run_id = (SELECT run.id FROM run) AND g.name = @name AND g.consumed_seq IS NULL
    ORDER BY g.id LIMIT 1
    FOR UPDATE
), ins AS (
    INSERT INTO keel.saga_steps AS s (run_id, seq, name, kind, status, output, attempts, started_at, finished_at)
    SELECT @run_id, @seq, @name, 'signal', 'completed', pick.value, 1, clock_timestamp(), clock_timestamp()
    FROM pick
    ON CONFLICT (run_id, seq) DO UPDATE SET
        status = EXCLUDED.status, output = EXCLUDED.output, error = NULL,
        attempts = EXCLUDED.attempts, finished_at = EXCLUDED.finished_at
    WHERE s.status = 'waiting'
    RETURNING s.seq
), started AS (
    UPDATE keel.saga_runs r SET
        status = 'running', owner = @owner, resumes = r.resumes + 1,
        started_at = COALESCE(r.started_at, now()), updated_at = now()
    FROM ins
    WHERE r.id = @run_id AND (r.status = 'pending') IS TRUE
)
UPDATE keel.saga_signals g SET consumed_seq = ins.seq, consumed_at = now()
FROM pick, ins
WHERE g.id = pick.id
RETURNING g.value;

-- name: ParkRun :one
-- Parks a run: it holds no worker until a timer, a signal, a child or a
-- cancel wakes it. The new generation makes the executing job stale.
UPDATE keel.saga_runs SET
    status = 'waiting',
    generation = generation + 1,
    owner = NULL,
    wake_at = sqlc.narg('wake_at'),
    wait_reason = @wait_reason,
    updated_at = now()
WHERE id = @id AND epoch = @epoch
RETURNING generation, queue;

-- name: WakeRun :one
-- Wakes a waiting run; the caller inserts the job of the new generation. No
-- row when the run does not wait. The run's row is locked whatever its
-- status: a run deciding to park holds that lock, so either this waits for
-- the park to commit and then wakes it, or the parking run waits for this
-- transaction and then sees what changed (a finished child, say).
WITH target AS (
    SELECT s.id, s.status FROM keel.saga_runs s WHERE s.id = sqlc.arg(id)::text FOR UPDATE
)
UPDATE keel.saga_runs r SET
    status = 'pending',
    generation = r.generation + 1,
    wake_at = NULL,
    wait_reason = NULL,
    updated_at = now()
FROM target
WHERE r.id = target.id AND target.status = 'waiting'
RETURNING r.generation, r.queue;

-- name: SignalRunWithJob :one
-- Stores a signal for a run that is not final and, in the same statement,
-- wakes the run when it waits and inserts the job of its new generation,
-- so a signal is one statement (and, on the engine's own pool, one round
-- trip and one commit). The run's row is locked first, as a parking run's
-- decision locks it, so the park sees either the signal or the wake-up.
-- generation is 0 when the run was not waiting. No row: the run is missing
-- or final, or the idempotency key was used. The job is the one
-- jobs.Client.Insert would write (kind, metadata and attempts as given). With owner, a jobs client that
-- reserved a worker of claim_queue, the job of a run woken in that queue
-- is written claimed by that client unless the queue is paused, as
-- StartRunWithJob writes it, and comes back as claimed_job. The jobs'
-- insert notification goes out for a job left available: with notify, or
-- always for a queue other than claim_queue.
WITH target AS (
    SELECT r.id, r.status FROM keel.saga_runs r
    WHERE r.id = @run_id AND r.status NOT IN ('succeeded', 'failed', 'cancelled')
    FOR UPDATE
), sig AS (
    INSERT INTO keel.saga_signals (run_id, name, value, idempotency_key)
    SELECT target.id, @name, @value, sqlc.narg('idempotency_key') FROM target
    ON CONFLICT (run_id, idempotency_key) DO NOTHING
    RETURNING id
), woken AS (
    UPDATE keel.saga_runs r SET
        status = 'pending',
        generation = r.generation + 1,
        wake_at = NULL,
        wait_reason = NULL,
        updated_at = now()
    FROM target, sig
    WHERE r.id = target.id AND target.status = 'waiting'
    RETURNING r.id, r.generation, r.queue
), claim AS MATERIALIZED (
    SELECT sqlc.narg('owner')::text IS NOT NULL AND woken.queue = @claim_queue::text
        AND (SELECT q.paused_at FROM keel.job_queues q WHERE q.name = woken.queue) IS NULL AS claimed
    FROM woken
), job AS (
    INSERT INTO keel.jobs (kind, queue, args, metadata, max_attempts, state, attempt, attempted_at, heartbeat_at, owner)
    SELECT @job_kind::text, woken.queue, jsonb_build_object('run_id', woken.id, 'generation', woken.generation),
           @job_metadata::jsonb, @job_max_attempts::int,
           (CASE WHEN claim.claimed THEN 'running' ELSE 'available' END)::keel.job_state,
           CASE WHEN claim.claimed THEN 1 ELSE 0 END,
           CASE WHEN claim.claimed THEN now() END,
           CASE WHEN claim.claimed THEN now() END,
           CASE WHEN claim.claimed THEN sqlc.narg('owner')::text END
    FROM woken CROSS JOIN claim
    RETURNING *
), notified AS (
    SELECT pg_notify(@channel::text, job.queue) FROM job
    WHERE job.state = 'available' AND (@notify::boolean OR job.queue <> @claim_queue::text)
)
SELECT sig.id, COALESCE(woken.generation, 0)::bigint AS generation,
    (SELECT to_jsonb(job) - 'output' FROM job WHERE job.state = 'running')::jsonb AS claimed_job
FROM sig LEFT JOIN woken ON true
WHERE (SELECT count(*) FROM notified) >= 0;

-- name: SetCompensating :execrows
UPDATE keel.saga_runs SET status = 'compensating', updated_at = now()
WHERE id = @id AND epoch = @epoch;

-- name: FinishRun :one
-- Ends a run, and returns it as stored (with the parent to wake, if any).
UPDATE keel.saga_runs SET
    status = @status,
    output = sqlc.narg('output')::jsonb,
    error = sqlc.narg('error')::jsonb,
    owner = NULL,
    wake_at = NULL,
    wait_reason = NULL,
    last_error = NULL,
    finished_at = now(),
    updated_at = now()
WHERE id = @id AND epoch = @epoch
RETURNING *;

-- name: FinishedRuns :many
-- Which of the runs are final, as stored: an awaiting process asks once per
-- notification for every run it awaits. The status test is written as
-- (…) IS TRUE so that each run is found by id: as a plain status IN (…), a
-- planner searched the status index and read every finished run.
SELECT * FROM keel.saga_runs
WHERE id = ANY (@ids::text[]) AND (status IN ('succeeded', 'failed', 'cancelled')) IS TRUE;

-- name: RecordLastError :execrows
-- Puts a run back to pending with a reason it cannot run here (e.g. its
-- version is not registered), visible in psql.
UPDATE keel.saga_runs SET status = 'pending', owner = NULL, last_error = @last_error, updated_at = now()
WHERE id = @id AND epoch = @epoch;

-- name: RequestCancel :many
-- Requests the cancel of a run and of its non-final descendants. Waiting
-- runs are woken (woken = true; the caller inserts their jobs).
WITH RECURSIVE tree AS (
    SELECT t.id FROM keel.saga_runs t WHERE t.id = @id
    UNION
    SELECT c.id FROM keel.saga_runs c JOIN tree ON c.parent_id = tree.id
), old AS (
    SELECT o.id, o.status FROM keel.saga_runs o
    WHERE o.id IN (SELECT tree.id FROM tree) AND o.status NOT IN ('succeeded', 'failed', 'cancelled')
    FOR UPDATE
)
UPDATE keel.saga_runs r SET
    cancel_requested_at = COALESCE(r.cancel_requested_at, now()),
    status = CASE WHEN old.status = 'waiting' THEN 'pending' ELSE r.status END,
    generation = CASE WHEN old.status = 'waiting' THEN r.generation + 1 ELSE r.generation END,
    wake_at = NULL,
    wait_reason = NULL,
    updated_at = now()
FROM old
WHERE r.id = old.id
RETURNING r.id, r.queue, r.generation, (old.status = 'waiting')::boolean AS woken;

-- name: CancelsRequested :many
-- Which of the runs an engine executes have a cancel requested: its check
-- on an interval, for a cancel whose notification did not reach it.
SELECT id FROM keel.saga_runs
WHERE id = ANY (@ids::text[]) AND cancel_requested_at IS NOT NULL;

-- name: ListRuns :many
SELECT * FROM keel.saga_runs
WHERE (sqlc.narg('status')::keel.saga_run_status IS NULL OR status = sqlc.narg('status'))
  AND (sqlc.narg('workflow')::text IS NULL OR workflow = sqlc.narg('workflow'))
  AND (sqlc.narg('parent_id')::text IS NULL OR parent_id = sqlc.narg('parent_id'))
ORDER BY created_at DESC, id
LIMIT @max;

-- name: GetValue :one
SELECT value FROM keel.saga_values WHERE run_id = @run_id AND name = @name;

-- name: DeleteStepsForResume :execrows
-- Forgets a failed or cancelled run's failed steps and compensations, so a
-- resume runs them again; completed steps replay.
DELETE FROM keel.saga_steps s
USING keel.saga_runs r
WHERE s.run_id = @run_id AND r.id = s.run_id AND r.status IN ('failed', 'cancelled')
  AND (s.status = 'failed' OR s.seq < 0);

-- name: ReopenRun :one
-- Makes a failed or cancelled run pending again under a new generation.
UPDATE keel.saga_runs SET
    status = 'pending',
    generation = generation + 1,
    error = NULL,
    output = NULL,
    cancel_requested_at = NULL,
    finished_at = NULL,
    deadline = sqlc.narg('deadline'),
    updated_at = now()
WHERE id = @id AND status IN ('failed', 'cancelled')
RETURNING generation, queue;

-- name: ForkRun :one
-- Starts a new run of the same workflow and input as src, at version. No
-- row: src is missing or the new id is taken (nothing is inserted). The
-- deadline is as in InsertRun.
INSERT INTO keel.saga_runs (id, workflow, version, queue, input, forked_from, forked_at_seq, deadline)
SELECT @new_id, s.workflow, @version, s.queue, s.input, s.id, @at_seq,
    now() + sqlc.narg('timeout_us')::bigint * interval '1 microsecond'
FROM keel.saga_runs s WHERE s.id = @src_id
ON CONFLICT (id) DO NOTHING
RETURNING *;

-- name: CopyHistory :execrows
-- Copies src's completed history before position at_seq into a fork.
INSERT INTO keel.saga_steps (run_id, seq, name, kind, status, output, error, attempts, started_at, finished_at)
SELECT @new_id, s.seq, s.name, s.kind, s.status, s.output, s.error, s.attempts, s.started_at, s.finished_at
FROM keel.saga_steps s
WHERE s.run_id = @src_id AND s.seq > 0 AND s.seq < @at_seq AND s.status = 'completed';

-- name: HoldsRun :one
-- Whether the executor of epoch still holds the run.
SELECT EXISTS (SELECT 1 FROM keel.saga_runs WHERE id = @id AND epoch = @epoch)::boolean AS holds;
