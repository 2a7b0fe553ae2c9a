-- +goose Up
CREATE TYPE keel.saga_run_status AS ENUM (
    'pending', 'running', 'waiting', 'compensating', 'succeeded', 'failed', 'cancelled'
);
COMMENT ON TYPE keel.saga_run_status IS 'Where a workflow run is. pending: its job is queued (or it waits for a process that registers its version, see last_error); running: an executor replays and runs it; waiting: parked on a timer, a signal or a child, holding no worker (wake_at, wait_reason); compensating: running the undo of its completed steps after a failure or cancel; succeeded, failed, cancelled: final.';

CREATE TYPE keel.saga_step_status AS ENUM ('completed', 'failed', 'waiting');
COMMENT ON TYPE keel.saga_step_status IS 'The recorded outcome of a step. completed: output holds its result; failed: error holds why, after its last attempt; waiting: a signal wait whose deadline is recorded in output and whose signal has not come yet.';

CREATE TABLE keel.saga_runs (
    id                  text PRIMARY KEY CHECK (id <> '' AND length(id) <= 255),
    workflow            text NOT NULL CHECK (workflow <> '' AND length(workflow) <= 255),
    version             integer NOT NULL CHECK (version > 0),
    status              keel.saga_run_status NOT NULL DEFAULT 'pending',
    queue               text NOT NULL,
    input               jsonb NOT NULL,
    output              jsonb,
    error               jsonb,
    last_error          text,
    parent_id           text REFERENCES keel.saga_runs (id) ON DELETE CASCADE,
    parent_seq          integer,
    forked_from         text,
    forked_at_seq       integer,
    epoch               bigint NOT NULL DEFAULT 0,
    generation          bigint NOT NULL DEFAULT 1,
    owner               text,
    resumes             integer NOT NULL DEFAULT 0,
    wake_at             timestamptz,
    wait_reason         text,
    cancel_requested_at timestamptz,
    deadline            timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz
);
COMMENT ON TABLE keel.saga_runs IS 'Durable workflow runs (package saga). A row is one run of a registered workflow; it is executed and resumed by a job of kind keel.saga.run in keel.jobs.';
COMMENT ON COLUMN keel.saga_runs.id IS 'Run id: given at start (starting twice with one id returns the first run) or a random UUID.';
COMMENT ON COLUMN keel.saga_runs.workflow IS 'Name of the registered workflow.';
COMMENT ON COLUMN keel.saga_runs.version IS 'Workflow version the run was started with; only a process that registered this version runs it.';
COMMENT ON COLUMN keel.saga_runs.status IS 'Lifecycle status, see type keel.saga_run_status.';
COMMENT ON COLUMN keel.saga_runs.queue IS 'Jobs queue whose workers execute the run.';
COMMENT ON COLUMN keel.saga_runs.input IS 'The workflow input, encoded as JSON.';
COMMENT ON COLUMN keel.saga_runs.output IS 'The workflow result, encoded as JSON, once it succeeded.';
COMMENT ON COLUMN keel.saga_runs.error IS 'Why the run failed or was cancelled: {"kind", "message", ...}; kind is step, workflow, nondeterminism, timeout, cancelled or compensation.';
COMMENT ON COLUMN keel.saga_runs.last_error IS 'The latest problem that keeps the run from progressing without ending it, e.g. no process registers its version.';
COMMENT ON COLUMN keel.saga_runs.parent_id IS 'The run that started this one as a child; cancelling the parent cancels it.';
COMMENT ON COLUMN keel.saga_runs.parent_seq IS 'Position of the child-start step in the parent''s history.';
COMMENT ON COLUMN keel.saga_runs.forked_from IS 'The run this one was forked from, if any.';
COMMENT ON COLUMN keel.saga_runs.forked_at_seq IS 'The step position the fork starts at: history before it was copied.';
COMMENT ON COLUMN keel.saga_runs.epoch IS 'Fencing token: bumped each time an executor takes the run; a checkpoint written with an older epoch is refused.';
COMMENT ON COLUMN keel.saga_runs.generation IS 'Bumped each time the run parks or is woken; the job that carries an older generation is stale and does nothing.';
COMMENT ON COLUMN keel.saga_runs.owner IS 'The jobs client id of the executor that holds the current epoch.';
COMMENT ON COLUMN keel.saga_runs.resumes IS 'How many times an executor took the run (first run, wake-ups, crash recoveries).';
COMMENT ON COLUMN keel.saga_runs.wake_at IS 'While waiting: when a timer or a wait timeout wakes the run; NULL when only a signal or a child can.';
COMMENT ON COLUMN keel.saga_runs.wait_reason IS 'While waiting: what the run waits for, e.g. "timer", "signal approve", "child order-1/3".';
COMMENT ON COLUMN keel.saga_runs.cancel_requested_at IS 'Set by Cancel; the executor stops at its next step and compensates.';
COMMENT ON COLUMN keel.saga_runs.deadline IS 'The workflow timeout: past it the run stops, compensates and fails with kind timeout.';
COMMENT ON COLUMN keel.saga_runs.created_at IS 'When the run was started.';
COMMENT ON COLUMN keel.saga_runs.started_at IS 'When an executor first took the run.';
COMMENT ON COLUMN keel.saga_runs.updated_at IS 'When the row last changed.';
COMMENT ON COLUMN keel.saga_runs.finished_at IS 'When the run reached a final status.';

CREATE INDEX saga_runs_status_idx ON keel.saga_runs (status, created_at);
COMMENT ON INDEX keel.saga_runs_status_idx IS 'Listing runs by status.';
CREATE INDEX saga_runs_parent_idx ON keel.saga_runs (parent_id) WHERE parent_id IS NOT NULL;
COMMENT ON INDEX keel.saga_runs_parent_idx IS 'Children of a run, for cancellation cascade.';

CREATE TABLE keel.saga_steps (
    run_id      text NOT NULL REFERENCES keel.saga_runs (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('step', 'tx', 'sleep', 'signal', 'child', 'await', 'value', 'compensation')),
    status      keel.saga_step_status NOT NULL,
    output      jsonb,
    error       text,
    attempts    integer NOT NULL DEFAULT 1,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
COMMENT ON TABLE keel.saga_steps IS 'The checkpointed history of each run: one row per step, in the order the workflow function reached them. Replay returns these instead of running the steps again.';
COMMENT ON COLUMN keel.saga_steps.run_id IS 'The run.';
COMMENT ON COLUMN keel.saga_steps.seq IS 'Position in the run''s history, from 1. A compensation is stored at minus the position of the step it undoes.';
COMMENT ON COLUMN keel.saga_steps.name IS 'The step''s name as the workflow gave it; replay checks it (determinism guard).';
COMMENT ON COLUMN keel.saga_steps.kind IS 'step (a function), tx (a transactional step), sleep (a durable timer; output is the wake time), signal (a signal wait), child (a child start; output is the child run id), await (a child result), value (a published value), compensation (the undo of step -seq).';
COMMENT ON COLUMN keel.saga_steps.status IS 'See type keel.saga_step_status.';
COMMENT ON COLUMN keel.saga_steps.output IS 'The step''s result, encoded as JSON.';
COMMENT ON COLUMN keel.saga_steps.error IS 'The error of the step''s last attempt when it failed.';
COMMENT ON COLUMN keel.saga_steps.attempts IS 'Attempts the step took.';
COMMENT ON COLUMN keel.saga_steps.started_at IS 'When the step''s first attempt started.';
COMMENT ON COLUMN keel.saga_steps.finished_at IS 'When its outcome was checkpointed.';

CREATE TABLE keel.saga_signals (
    id              bigserial PRIMARY KEY,
    run_id          text NOT NULL REFERENCES keel.saga_runs (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name <> ''),
    value           jsonb NOT NULL,
    idempotency_key text,
    sent_at         timestamptz NOT NULL DEFAULT now(),
    consumed_seq    integer,
    consumed_at     timestamptz,
    UNIQUE (run_id, idempotency_key)
);
COMMENT ON TABLE keel.saga_signals IS 'Signals sent to runs. A signal is kept until a signal wait of the same name consumes it, oldest first.';
COMMENT ON COLUMN keel.saga_signals.id IS 'Signal id; signals of one name are consumed in id order.';
COMMENT ON COLUMN keel.saga_signals.run_id IS 'The run the signal is for.';
COMMENT ON COLUMN keel.saga_signals.name IS 'Signal name the workflow waits on.';
COMMENT ON COLUMN keel.saga_signals.value IS 'The signal''s value, encoded as JSON.';
COMMENT ON COLUMN keel.saga_signals.idempotency_key IS 'A second signal with the same key to the same run is dropped.';
COMMENT ON COLUMN keel.saga_signals.sent_at IS 'When the signal was sent.';
COMMENT ON COLUMN keel.saga_signals.consumed_seq IS 'Position of the signal wait that consumed it; NULL while unconsumed.';
COMMENT ON COLUMN keel.saga_signals.consumed_at IS 'When it was consumed.';
CREATE INDEX saga_signals_pending_idx ON keel.saga_signals (run_id, name, id) WHERE consumed_seq IS NULL;
COMMENT ON INDEX keel.saga_signals_pending_idx IS 'Finding the oldest unconsumed signal of a name.';

CREATE TABLE keel.saga_values (
    run_id     text NOT NULL REFERENCES keel.saga_runs (id) ON DELETE CASCADE,
    name       text NOT NULL,
    value      jsonb NOT NULL,
    seq        integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, name)
);
COMMENT ON TABLE keel.saga_values IS 'Named values a run published (progress, status) for callers to read; the latest value per name.';
COMMENT ON COLUMN keel.saga_values.run_id IS 'The run.';
COMMENT ON COLUMN keel.saga_values.name IS 'Value name.';
COMMENT ON COLUMN keel.saga_values.value IS 'The latest value, encoded as JSON.';
COMMENT ON COLUMN keel.saga_values.seq IS 'History position of the step that set it.';
COMMENT ON COLUMN keel.saga_values.updated_at IS 'When it was set.';

-- +goose Down
DROP TABLE keel.saga_values;
DROP TABLE keel.saga_signals;
DROP TABLE keel.saga_steps;
DROP TABLE keel.saga_runs;
DROP TYPE keel.saga_step_status;
DROP TYPE keel.saga_run_status;
