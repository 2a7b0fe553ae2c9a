-- Queries only the keel command runs, to show keel's state to a person.

-- name: DatabaseNow :one
-- The database's clock. The CLI measures ages ("3s ago") against it, not
-- against the clock of the machine it runs on.
SELECT now()::timestamptz AS now;

-- name: ListJobsForPeople :many
-- Jobs newest first, optionally of one state, queue and kind, as ListJobs.
-- keel's own jobs (kinds starting with "keel.", such as the saga engine's
-- keel.saga.run) are left out unless @all_kinds.
SELECT * FROM keel.jobs
WHERE (sqlc.narg('state')::keel.job_state IS NULL OR state = sqlc.narg('state')::keel.job_state)
  AND (sqlc.narg('queue')::text IS NULL OR queue = sqlc.narg('queue')::text)
  AND (sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind')::text)
  AND (@all_kinds::boolean OR NOT starts_with(kind, 'keel.'))
ORDER BY id DESC
LIMIT sqlc.arg('max_rows')::integer;
