-- +goose Up
-- A saga step that waits (a durable timer, a signal wait) has not finished:
-- its finished_at stays NULL until it does, so a person never reads a wait
-- as done, nor its duration as the time until it was parked. Steps that
-- wait now are cleared; a step that finished keeps its time. The check lets
-- a waiting step still carry a time, as a process of an earlier keel writes
-- it during a rolling upgrade; it is NOT VALID because the column was NOT
-- NULL until now, so no stored row needs the scan.
UPDATE keel.saga_steps SET finished_at = NULL WHERE status = 'waiting';
ALTER TABLE keel.saga_steps ALTER COLUMN finished_at DROP NOT NULL;
ALTER TABLE keel.saga_steps ADD CONSTRAINT saga_steps_finished_at
    CHECK (finished_at IS NOT NULL OR status = 'waiting') NOT VALID;
COMMENT ON COLUMN keel.saga_steps.finished_at IS 'When its outcome was checkpointed; NULL while the step waits.';
COMMENT ON TYPE keel.saga_step_status IS 'The recorded outcome of a step. completed: output holds its result; failed: error holds why, after its last attempt; waiting: a durable timer or a signal wait that has not ended, whose wake time or deadline is recorded in output.';
-- Resuming a parked subscription now clears its last error too, as a reset
-- does: what list and show print as the error is the current one.
COMMENT ON COLUMN keel.subscriptions.last_error IS 'The handler''s last error, kept until an event is handled or a person resumes or resets the subscription.';

-- +goose Down
COMMENT ON COLUMN keel.subscriptions.last_error IS 'The handler''s last error, kept until an event is handled.';
COMMENT ON TYPE keel.saga_step_status IS 'The recorded outcome of a step. completed: output holds its result; failed: error holds why, after its last attempt; waiting: a signal wait whose deadline is recorded in output and whose signal has not come yet.';
COMMENT ON COLUMN keel.saga_steps.finished_at IS 'When its outcome was checkpointed.';
ALTER TABLE keel.saga_steps DROP CONSTRAINT saga_steps_finished_at;
UPDATE keel.saga_steps SET finished_at = started_at WHERE finished_at IS NULL;
ALTER TABLE keel.saga_steps ALTER COLUMN finished_at SET NOT NULL;
