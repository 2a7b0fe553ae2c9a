-- name: OutboxEnqueue :execrows
-- Inserts messages given as parallel arrays; an id already present is skipped
-- (on a partitioned table: present in the partition the message goes to, as
-- a unique index cannot span partitions, so the conflict names no index).
-- Ids travel as text: pgx encodes a []string in one pass, where each
-- uuid.UUID would go through its driver.Valuer, fail as binary and be parsed
-- back.
-- A not-before in the past (the Unix epoch for none) means now; now is the
-- database clock unless the caller moves it.
INSERT INTO keel.outbox (id, topic, key, type, payload, headers, available_at)
SELECT u.id, u.topic, NULLIF(u.key, ''), u.type, u.payload, u.headers::jsonb, GREATEST(u.not_before, COALESCE(sqlc.narg(now)::timestamptz, now()))
FROM (
    SELECT
        unnest(sqlc.arg(ids)::text[])::uuid AS id,
        unnest(sqlc.arg(topics)::text[]) AS topic,
        unnest(sqlc.arg(keys)::text[]) AS key,
        unnest(sqlc.arg(types)::text[]) AS type,
        unnest(sqlc.arg(payloads)::bytea[]) AS payload,
        unnest(sqlc.arg(headers)::text[]) AS headers,
        unnest(sqlc.arg(not_before)::timestamptz[]) AS not_before
) AS u
ON CONFLICT DO NOTHING;

-- name: OutboxClaim :many
-- Leases up to batch_size publishable messages to one relay: pending,
-- available, not leased by a live relay, and first undelivered of their key.
-- The earlier-message check says state < 'delivered' (pending is the only
-- state before it), the predicate of the (key, seq) index and of no other:
-- written as state = 'pending' it let a planner that believed few messages
-- were pending walk the pending index over every earlier message, for each
-- candidate, instead of looking up the candidate's key.
WITH candidates AS (
    SELECT p.seq
    FROM keel.outbox p
    WHERE p.state = 'pending'
      AND p.available_at <= COALESCE(sqlc.narg(now)::timestamptz, now())
      AND (p.locked_until IS NULL OR p.locked_until < COALESCE(sqlc.narg(now)::timestamptz, now()))
      AND (p.key IS NULL OR NOT EXISTS (
          SELECT 1 FROM keel.outbox e
          WHERE e.key = p.key AND e.state < 'delivered' AND e.seq < p.seq
      ))
    ORDER BY p.seq
    LIMIT sqlc.arg(batch_size)::integer
    FOR UPDATE SKIP LOCKED
)
UPDATE keel.outbox o
SET locked_until = COALESCE(sqlc.narg(now)::timestamptz, now()) + sqlc.arg(lease_ms)::bigint * interval '1 millisecond',
    locked_by = sqlc.arg(relay)::text,
    attempts = o.attempts + 1
FROM candidates c
WHERE o.seq = c.seq
RETURNING o.seq, o.id, o.topic, o.key, o.type, o.payload, o.headers, o.attempts, o.created_at;

-- name: OutboxMarkDelivered :execrows
-- Records a batch of successful publications.
UPDATE keel.outbox
SET state = 'delivered', delivered_at = COALESCE(sqlc.narg(now)::timestamptz, now()), locked_until = NULL
WHERE seq = ANY(sqlc.arg(seqs)::bigint[]) AND state = 'pending';

-- name: OutboxMarkFailed :many
-- Records a batch of failed attempts: back to pending with the next retry
-- time, or dead once the message has used max_attempts attempts. The rows
-- are found by primary key (seq = ANY), never by walking every pending
-- message to join it with the batch.
UPDATE keel.outbox o
SET state = (CASE WHEN o.attempts >= sqlc.arg(max_attempts)::integer THEN 'dead' ELSE 'pending' END)::keel.outbox_state,
    available_at = COALESCE(sqlc.narg(now)::timestamptz, now()) + u.retry_ms * interval '1 millisecond',
    locked_until = NULL,
    last_error = u.error,
    errors = o.errors || jsonb_build_array(jsonb_build_object('attempt', o.attempts, 'at', COALESCE(sqlc.narg(now)::timestamptz, now()), 'error', u.error))
FROM (
    SELECT unnest(sqlc.arg(seqs)::bigint[]) AS seq, unnest(sqlc.arg(errors)::text[]) AS error, unnest(sqlc.arg(retry_ms)::bigint[]) AS retry_ms
) AS u
WHERE o.seq = ANY(sqlc.arg(seqs)::bigint[]) AND o.seq = u.seq AND o.state = 'pending'
RETURNING o.seq, o.state;

-- name: OutboxDeleteDelivered :execrows
-- Retention: deletes up to batch_size messages delivered before before,
-- oldest first. The seqs are gathered into an array so each row is reached
-- by primary key (a semi-join may be planned as a scan of the whole table).
DELETE FROM keel.outbox
WHERE seq = ANY(ARRAY(
    SELECT d.seq FROM keel.outbox d
    WHERE d.state = 'delivered' AND d.delivered_at < sqlc.arg(before)::timestamptz
    ORDER BY d.delivered_at
    LIMIT sqlc.arg(batch_size)::integer
))
AND state = 'delivered' AND delivered_at < sqlc.arg(before)::timestamptz;

-- name: OutboxOldestPending :one
-- The enqueue time of the oldest undelivered message, for the lag metric.
SELECT created_at FROM keel.outbox WHERE state = 'pending' ORDER BY seq LIMIT 1;

-- name: OutboxRequeue :one
-- Puts a dead message back in line with fresh attempts.
UPDATE keel.outbox
SET state = 'pending', attempts = 0, available_at = COALESCE(sqlc.narg(now)::timestamptz, now()), locked_until = NULL, locked_by = NULL
WHERE id = sqlc.arg(id) AND state = 'dead'
RETURNING seq;

-- name: OutboxRequeueDead :execrows
-- Puts every dead message back in line with fresh attempts: those of one
-- topic, or of every topic when topic is NULL. The dead letters are found
-- through outbox_dead_idx, so the cost follows how many there are.
UPDATE keel.outbox
SET state = 'pending', attempts = 0, available_at = COALESCE(sqlc.narg(now)::timestamptz, now()), locked_until = NULL, locked_by = NULL
WHERE state = 'dead' AND (sqlc.narg(topic)::text IS NULL OR topic = sqlc.narg(topic)::text);

-- name: OutboxGet :one
SELECT * FROM keel.outbox WHERE id = sqlc.arg(id);

-- name: InboxClaim :one
-- Records that the consumer processes the message. Returns the row when this
-- is the first time (or the earlier record is older than the dedup window);
-- returns no row when the message was already processed. A concurrent claim
-- of the same id waits for the first transaction and then sees it.
INSERT INTO keel.inbox (consumer, message_id, processed_at)
VALUES (sqlc.arg(consumer), sqlc.arg(message_id), COALESCE(sqlc.narg(now)::timestamptz, now()))
ON CONFLICT (consumer, message_id) DO UPDATE
SET processed_at = EXCLUDED.processed_at
WHERE keel.inbox.processed_at < COALESCE(sqlc.narg(now)::timestamptz, now()) - sqlc.arg(dedup_window_ms)::bigint * interval '1 millisecond'
RETURNING processed_at;

-- name: InboxExpire :execrows
-- Deletes up to batch_size seen-records older than before, oldest first.
-- The rows are reached by their tuple ids (a TID scan): a composite key has
-- no array form the planner can look up, and a semi-join may be planned as
-- a scan of the whole table. A record claimed again meanwhile has moved and
-- is left alone.
DELETE FROM keel.inbox
WHERE ctid = ANY(ARRAY(
    SELECT i.ctid FROM keel.inbox i
    WHERE i.processed_at < sqlc.arg(before)::timestamptz
    ORDER BY i.processed_at
    LIMIT sqlc.arg(batch_size)::integer
))
AND processed_at < sqlc.arg(before)::timestamptz;

-- name: OutboxRelease :exec
-- Hands back messages a stopping relay claimed but did not get to publish:
-- the lease ends now and the attempt does not count.
UPDATE keel.outbox
SET locked_until = NULL, attempts = attempts - 1
WHERE seq = ANY(sqlc.arg(seqs)::bigint[]) AND state = 'pending' AND locked_by = sqlc.arg(relay)::text;

-- name: OutboxList :many
-- Messages for people: dead letters first, then pending, then delivered,
-- each in enqueue order; optionally only one state.
SELECT * FROM keel.outbox
WHERE sqlc.narg(state)::keel.outbox_state IS NULL OR state = sqlc.narg(state)::keel.outbox_state
ORDER BY (CASE state WHEN 'dead' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END), seq
LIMIT sqlc.arg(max_rows)::integer;
