-- name: AdvisoryLock :exec
-- Waits for the session-level advisory lock with that key.
SELECT pg_advisory_lock(@key::bigint);

-- name: AdvisoryUnlock :one
-- Releases a session-level advisory lock; false when it was not held.
SELECT pg_advisory_unlock(@key::bigint);

-- name: DatabaseExists :one
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = @name::text);

-- name: ListDatabases :many
-- The names of the databases whose name starts with the prefix.
SELECT datname::text AS name
FROM pg_catalog.pg_database
WHERE starts_with(datname, @prefix::text)
ORDER BY datname;

-- name: TryAdvisoryXactLock :one
-- Takes the transaction-level advisory lock with that key if it is free;
-- it is released when the transaction ends.
SELECT pg_try_advisory_xact_lock(@key::bigint);

-- name: AdvisoryXactLock :exec
-- Takes the transaction-level advisory lock with that key, waiting while
-- another transaction holds it; it is released when the transaction ends.
SELECT pg_advisory_xact_lock(@key::bigint);

-- name: Notify :exec
-- Sends a notification; inside a transaction it is delivered on commit.
SELECT pg_notify(@channel::text, @payload::text);
