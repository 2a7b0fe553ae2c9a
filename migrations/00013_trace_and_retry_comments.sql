-- +goose Up
-- Comments only: a step between retries now waits too, and the trace
-- context of the write that stored a row travels in its metadata or
-- headers.
COMMENT ON TYPE keel.saga_step_status IS 'The recorded outcome of a step. completed: output holds its result; failed: error holds why, after its last attempt; waiting: a durable timer, a signal wait or a step between attempts that has not ended, whose wake time, deadline or next attempt''s time is recorded in output (a step''s attempts so far in attempts, its last error in error).';
COMMENT ON COLUMN keel.saga_runs.wait_reason IS 'While waiting: what the run waits for, e.g. "timer", "signal approve", "child order-1/3", "retry charge".';
COMMENT ON COLUMN keel.jobs.metadata IS 'Free-form JSON object the inserter attached; under "keel_trace", the trace context of the insert (see keeltype.CarrierKey).';
COMMENT ON COLUMN keel.events.metadata IS 'The writer''s metadata about the event (a JSON object); under "keel_trace", the trace context of the append.';
COMMENT ON COLUMN keel.outbox.headers IS 'Message headers, a JSON object of strings; they include the trace context of the enqueue (e.g. traceparent).';

-- +goose Down
COMMENT ON COLUMN keel.outbox.headers IS 'Message headers, a JSON object of strings.';
COMMENT ON COLUMN keel.events.metadata IS 'The writer''s metadata about the event (a JSON object).';
COMMENT ON COLUMN keel.jobs.metadata IS 'Free-form JSON object the inserter attached.';
COMMENT ON COLUMN keel.saga_runs.wait_reason IS 'While waiting: what the run waits for, e.g. "timer", "signal approve", "child order-1/3".';
COMMENT ON TYPE keel.saga_step_status IS 'The recorded outcome of a step. completed: output holds its result; failed: error holds why, after its last attempt; waiting: a durable timer or a signal wait that has not ended, whose wake time or deadline is recorded in output.';
