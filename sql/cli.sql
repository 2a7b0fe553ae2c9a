-- Queries only the keel command runs, to show keel's state to a person.

-- name: DatabaseNow :one
-- The database's clock. The CLI measures ages ("3s ago") against it, not
-- against the clock of the machine it runs on.
SELECT now()::timestamptz AS now;
