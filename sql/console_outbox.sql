-- Queries the console's outbox pages run, several times a minute while a
-- page is open. Each reads through one of keel.outbox's partial indexes, so
-- its cost follows the backlog, the dead letters or a page of 50 rows, never
-- the delivered history. The state is written as a literal in every query,
-- never as a parameter: only then may a generic plan use the partial index
-- of that state.

-- name: ConsoleOutboxTopics :many
-- Per topic: the messages waiting (outbox_pending_idx) with the enqueue time
-- of the oldest, and the dead letters (outbox_dead_idx).
SELECT topic, state, count(*)::bigint AS messages, min(created_at)::timestamptz AS oldest
FROM keel.outbox WHERE state = 'pending' GROUP BY topic, state
UNION ALL
SELECT topic, state, count(*)::bigint, min(created_at)::timestamptz
FROM keel.outbox WHERE state = 'dead' GROUP BY topic, state;

-- name: ConsoleOutboxPending :many
-- Messages waiting, newest first, before the message @before (a seq),
-- optionally of one topic: outbox_pending_idx read backwards.
SELECT seq, id, topic, key, type, state, attempts, created_at, available_at, delivered_at, locked_by, locked_until,
       COALESCE(left(split_part(last_error, E'\n', 1), 500), '')::text AS last_error
FROM keel.outbox
WHERE state = 'pending' AND seq < @before::bigint
  AND (sqlc.narg(topic)::text IS NULL OR topic = sqlc.narg(topic)::text)
ORDER BY seq DESC
LIMIT @max_rows::integer;

-- name: ConsoleOutboxDead :many
-- Dead letters, newest first, before the message @before (a seq),
-- optionally of one topic: outbox_dead_idx read backwards.
SELECT seq, id, topic, key, type, state, attempts, created_at, available_at, delivered_at, locked_by, locked_until,
       COALESCE(left(split_part(last_error, E'\n', 1), 500), '')::text AS last_error
FROM keel.outbox
WHERE state = 'dead' AND seq < @before::bigint
  AND (sqlc.narg(topic)::text IS NULL OR topic = sqlc.narg(topic)::text)
ORDER BY seq DESC
LIMIT @max_rows::integer;

-- name: ConsoleOutboxDeliveredAt :one
-- When the delivered message @seq was delivered: the delivered list's
-- cursor, looked up by primary key. No row once retention deleted it, and
-- with it every message delivered before.
SELECT delivered_at::timestamptz FROM keel.outbox WHERE seq = @seq::bigint AND state = 'delivered';

-- name: ConsoleOutboxDelivered :many
-- Delivered messages, the last delivered first, below the cursor
-- (@before_at, @before), optionally of one topic: outbox_delivered_idx read
-- backwards from @before_at (the planner draws that bound from the row
-- comparison). The first page's cursor is ('infinity', max bigint).
SELECT seq, id, topic, key, type, state, attempts, created_at, available_at, delivered_at, locked_by, locked_until,
       COALESCE(left(split_part(last_error, E'\n', 1), 500), '')::text AS last_error
FROM keel.outbox
WHERE state = 'delivered' AND (delivered_at, seq) < (@before_at::timestamptz, @before::bigint)
  AND (sqlc.narg(topic)::text IS NULL OR topic = sqlc.narg(topic)::text)
ORDER BY delivered_at DESC, seq DESC
LIMIT @max_rows::integer;
