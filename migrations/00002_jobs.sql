-- +goose Up
CREATE TYPE keel.job_state AS ENUM (
    'pending', 'scheduled', 'available', 'running', 'retryable', 'completed', 'cancelled', 'discarded'
);
COMMENT ON TYPE keel.job_state IS 'Where a job is in its life. pending: waits for its dependencies; scheduled: waits for run_at; available: ready to be claimed; running: claimed by a worker (owner); retryable: failed, runs again at run_at; completed, cancelled, discarded (the dead letter, attempts exhausted): final.';

CREATE TYPE keel.job_run_when AS ENUM ('success', 'failure', 'always');
COMMENT ON TYPE keel.job_run_when IS 'When a job with dependencies runs once they are all final. success: every dependency completed (else the job is cancelled); failure: at least one was cancelled or discarded; always: whatever they ended as.';

CREATE TABLE keel.jobs (
    id                  bigserial PRIMARY KEY,
    kind                text NOT NULL CHECK (kind <> '' AND length(kind) <= 255),
    queue               text NOT NULL DEFAULT 'default' CHECK (queue <> '' AND length(queue) <= 128),
    state               keel.job_state NOT NULL DEFAULT 'available',
    priority            smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 4),
    args                jsonb NOT NULL DEFAULT '{}',
    metadata            jsonb NOT NULL DEFAULT '{}',
    tags                text[] NOT NULL DEFAULT '{}',
    attempt             integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts        integer NOT NULL DEFAULT 25 CHECK (max_attempts > 0),
    timeout_ms          bigint NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),
    run_at              timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    attempted_at        timestamptz,
    finalized_at        timestamptz,
    heartbeat_at        timestamptz,
    owner               text,
    cancel_requested_at timestamptz,
    errors              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(errors) = 'array'),
    progress            smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    output              jsonb,
    unique_key          text,
    depends_on          bigint[] NOT NULL DEFAULT '{}',
    run_when            keel.job_run_when NOT NULL DEFAULT 'success',
    workflow            text,
    task                text
);

COMMENT ON TABLE keel.jobs IS 'Durable background jobs (package jobs). A row is one job; workers claim available rows with FOR UPDATE SKIP LOCKED in (priority, run_at, id) order.';
COMMENT ON COLUMN keel.jobs.id IS 'Job id, handed out at insert.';
COMMENT ON COLUMN keel.jobs.kind IS 'The job''s kind (JobArgs.Kind()): picks the handler that runs it.';
COMMENT ON COLUMN keel.jobs.queue IS 'Queue the job runs in; each client works the queues it is configured with.';
COMMENT ON COLUMN keel.jobs.state IS 'Lifecycle state, see type keel.job_state.';
COMMENT ON COLUMN keel.jobs.priority IS '1 (first) to 4 (last); claimed before run_at order.';
COMMENT ON COLUMN keel.jobs.args IS 'The job''s arguments: its JobArgs value encoded as JSON.';
COMMENT ON COLUMN keel.jobs.metadata IS 'Free-form JSON object the inserter attached.';
COMMENT ON COLUMN keel.jobs.tags IS 'Labels for finding jobs; keel does not interpret them.';
COMMENT ON COLUMN keel.jobs.attempt IS 'Attempts started so far (a snooze gives one back).';
COMMENT ON COLUMN keel.jobs.max_attempts IS 'Attempts after which a failing job is discarded.';
COMMENT ON COLUMN keel.jobs.timeout_ms IS 'Per-job run timeout in milliseconds; 0 takes the kind''s timeout.';
COMMENT ON COLUMN keel.jobs.run_at IS 'Earliest time the job may run: the schedule, the next retry or the end of a snooze.';
COMMENT ON COLUMN keel.jobs.created_at IS 'When the job was inserted.';
COMMENT ON COLUMN keel.jobs.attempted_at IS 'When the current or last attempt started.';
COMMENT ON COLUMN keel.jobs.finalized_at IS 'When the job reached a final state (completed, cancelled, discarded); retention counts from here.';
COMMENT ON COLUMN keel.jobs.heartbeat_at IS 'Last heartbeat of the running job''s owner; a running job whose heartbeat is older than the rescue timeout is returned to retryable.';
COMMENT ON COLUMN keel.jobs.owner IS 'Id of the client running the job (host/pid/random); NULL unless running.';
COMMENT ON COLUMN keel.jobs.cancel_requested_at IS 'Set by a cancel request; the owner of a running job cancels its context.';
COMMENT ON COLUMN keel.jobs.errors IS 'One JSON object per failed attempt: attempt, at, error, and a stack for panics.';
COMMENT ON COLUMN keel.jobs.progress IS 'Progress 0–100 the handler recorded.';
COMMENT ON COLUMN keel.jobs.output IS 'Output value the handler recorded; dependents can read it.';
COMMENT ON COLUMN keel.jobs.unique_key IS 'At most one job per unique key among non-final states.';
COMMENT ON COLUMN keel.jobs.depends_on IS 'Ids of jobs this one waits for (state pending until all are final).';
COMMENT ON COLUMN keel.jobs.run_when IS 'Run condition on the dependencies, see type keel.job_run_when.';
COMMENT ON COLUMN keel.jobs.workflow IS 'Name of the workflow (DAG) the job was inserted with, if any.';
COMMENT ON COLUMN keel.jobs.task IS 'The job''s task name inside its workflow.';

CREATE INDEX jobs_claim_idx ON keel.jobs (queue, priority, run_at, id) WHERE state = 'available';
COMMENT ON INDEX keel.jobs_claim_idx IS 'The claim query: available jobs of a queue in (priority, run_at, id) order.';
CREATE INDEX jobs_due_idx ON keel.jobs (run_at) WHERE state IN ('scheduled', 'retryable');
COMMENT ON INDEX keel.jobs_due_idx IS 'Promotion of scheduled and retryable jobs whose run_at has come.';
CREATE INDEX jobs_running_idx ON keel.jobs (owner) WHERE state = 'running';
COMMENT ON INDEX keel.jobs_running_idx IS 'Heartbeats (by owner) and rescue of running jobs.';
CREATE INDEX jobs_pending_idx ON keel.jobs (id) WHERE state = 'pending';
COMMENT ON INDEX keel.jobs_pending_idx IS 'Jobs waiting on dependencies, for dependency resolution.';
CREATE INDEX jobs_finalized_idx ON keel.jobs (state, finalized_at) WHERE finalized_at IS NOT NULL;
COMMENT ON INDEX keel.jobs_finalized_idx IS 'Retention: deletes final jobs past their retention period.';
CREATE UNIQUE INDEX jobs_unique_key_idx ON keel.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('completed', 'cancelled', 'discarded');
COMMENT ON INDEX keel.jobs_unique_key_idx IS 'At most one non-final job per unique key.';

CREATE TABLE keel.job_queues (
    name       text PRIMARY KEY,
    paused_at  timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE keel.job_queues IS 'Per-queue controls shared by every process; a queue with no row is running.';
COMMENT ON COLUMN keel.job_queues.name IS 'Queue name, as in keel.jobs.queue.';
COMMENT ON COLUMN keel.job_queues.paused_at IS 'When the queue was paused; NULL while it runs. Paused queues are not claimed from.';
COMMENT ON COLUMN keel.job_queues.updated_at IS 'When the row last changed.';

CREATE TABLE keel.job_schedules (
    name       text PRIMARY KEY,
    last_tick  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE keel.job_schedules IS 'Periodic (cron) jobs: the last tick enqueued per schedule, so each tick is enqueued once however many processes run.';
COMMENT ON COLUMN keel.job_schedules.name IS 'Name of the periodic job.';
COMMENT ON COLUMN keel.job_schedules.last_tick IS 'The most recent tick for which a job was inserted.';
COMMENT ON COLUMN keel.job_schedules.updated_at IS 'When last_tick last moved.';

-- +goose Down
DROP TABLE keel.job_schedules;
DROP TABLE keel.job_queues;
DROP TABLE keel.jobs;
DROP TYPE keel.job_run_when;
DROP TYPE keel.job_state;
