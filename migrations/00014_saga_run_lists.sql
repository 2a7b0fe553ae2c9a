-- +goose Up
-- The console lists runs newest first, a page at a time from a keyset
-- cursor (created_at, id): by status, and by workflow and status.
--
-- saga_runs_status_idx gains id, so that a page in one status is read in
-- the index's order and its LIMIT stops the read: with (status, created_at)
-- alone, the tie-break on id made the planner sort every run of the status.
-- Its name and its first columns stay, so every statement that used it
-- still does.
--
-- A workflow's finished runs get an index of their own: finished runs are
-- the history, where one workflow's runs may be rare (or absent, for a new
-- workflow whose every run fails), and a scan of the status index filtered
-- by workflow would read every succeeded run to fill a page. It holds
-- finished runs only, so a run adds its entry once, when it finishes. Runs
-- not finished are few, and the status index finds them.
DROP INDEX keel.saga_runs_status_idx;
CREATE INDEX saga_runs_status_idx ON keel.saga_runs (status, created_at, id);
COMMENT ON INDEX keel.saga_runs_status_idx IS 'Listing runs by status, newest first, a page at a time from a (created_at, id) cursor.';
CREATE INDEX saga_runs_finished_workflow_idx ON keel.saga_runs (workflow, status, created_at, id)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
COMMENT ON INDEX keel.saga_runs_finished_workflow_idx IS 'Listing one workflow''s finished runs by status, newest first (the console''s sagas page); runs not finished are found through saga_runs_status_idx.';

-- +goose Down
DROP INDEX keel.saga_runs_finished_workflow_idx;
DROP INDEX keel.saga_runs_status_idx;
CREATE INDEX saga_runs_status_idx ON keel.saga_runs (status, created_at);
COMMENT ON INDEX keel.saga_runs_status_idx IS 'Listing runs by status.';
