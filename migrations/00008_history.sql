-- +goose Up
-- Plans that stay right however much history the tables hold.
--
-- keel.jobs: running jobs were indexed by owner under the predicate
-- state = 'running'. Every statement that names a running job by id
-- (complete, finish, progress, output) also says state = 'running', so the
-- planner could read that small partial index whole instead of the primary
-- key, and when statistics said few jobs run it did, once per job of a
-- batch. Heartbeats now name their jobs by id, and the rescue looks jobs up
-- by heartbeat: an index on heartbeat_at, which is set exactly while a job
-- runs, serves it under a predicate no other statement implies.
DROP INDEX keel.jobs_running_idx;
CREATE INDEX jobs_heartbeat_idx ON keel.jobs (heartbeat_at) WHERE heartbeat_at IS NOT NULL;
COMMENT ON INDEX keel.jobs_heartbeat_idx IS 'Rescue: running jobs (heartbeat_at is set exactly while a job runs) whose owner stopped heartbeating.';

-- keel.outbox: the claim checks that no earlier message of a candidate's key
-- is pending. The (key, seq) index that answers it shared its predicate
-- with the pending index, so a planner that believed few messages were
-- pending searched the pending index by seq alone, walking every earlier
-- pending message once per candidate. Its predicate is now one only that
-- check states (pending is the one state before delivered).
DROP INDEX keel.outbox_pending_key_idx;
CREATE INDEX outbox_pending_key_idx ON keel.outbox (key, seq) WHERE state < 'delivered' AND key IS NOT NULL;
COMMENT ON INDEX keel.outbox_pending_key_idx IS 'The claim''s per-key order: is an earlier message of this key still pending (state < delivered means pending)?';

-- +goose Down
DROP INDEX keel.outbox_pending_key_idx;
CREATE INDEX outbox_pending_key_idx ON keel.outbox (key, seq) WHERE state = 'pending' AND key IS NOT NULL;
COMMENT ON INDEX keel.outbox_pending_key_idx IS 'Finds an earlier undelivered message of the same key.';
DROP INDEX keel.jobs_heartbeat_idx;
CREATE INDEX jobs_running_idx ON keel.jobs (owner) WHERE state = 'running';
COMMENT ON INDEX keel.jobs_running_idx IS 'Heartbeats (by owner) and rescue of running jobs.';
