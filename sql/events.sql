-- name: AppendEvents :many
-- Appends events to a stream in one statement: bumps the stream's row when it
-- exists, is live and its version matches the expectation (kind 'any',
-- 'exists' or 'exact' with @expected), or creates the row when the
-- expectation allows a new stream ('any', 'no_stream', or 'exact' 0). Returns
-- no rows when the expectation does not hold (or the stream is deleted) and
-- nothing is written. The row lock on the stream makes concurrent appends to
-- one stream queue up, so versions have no holes and, because the append is
-- queued for the sequencer after the lock is taken, append order follows
-- version order within a stream. generate_subscripts keeps the planner
-- estimate the same for every batch size, so the prepared statement settles
-- on one generic plan instead of being planned again on every call. Event
-- ids, data and metadata travel as text[]: pgx encodes a []string in one
-- pass, where a []uuid.UUID goes through each id's driver.Valuer (failing as
-- binary and parsed back) and a []json.RawMessage through reflection. The
-- server parses the JSON either way.
WITH bumped AS (
    UPDATE keel.streams s
    SET version = s.version + @count::bigint, updated_at = now()
    WHERE s.stream_id = @stream_id::text
      AND s.deleted_at IS NULL
      AND (@kind::text IN ('any', 'exists') OR (@kind::text = 'exact' AND s.version = @expected::bigint))
    RETURNING s.version - @count::bigint AS prev
), created AS (
    INSERT INTO keel.streams (stream_id, version)
    SELECT @stream_id::text, @count::bigint
    WHERE NOT EXISTS (SELECT 1 FROM bumped)
      AND (@kind::text IN ('any', 'no_stream') OR (@kind::text = 'exact' AND @expected::bigint = 0))
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING 0::bigint AS prev
), base AS (
    SELECT prev FROM bumped
    UNION ALL
    SELECT prev FROM created
), queued AS (
    INSERT INTO keel.unsequenced (stream_id, first_version, event_count)
    SELECT @stream_id::text, base.prev + 1, @count::bigint
    FROM base
)
INSERT INTO keel.events (stream_id, version, event_id, type, data, metadata, causation_id, correlation_id)
SELECT @stream_id::text, base.prev + i, (@event_ids::text[])[i]::uuid, (@types::text[])[i],
       (@datas::text[])[i]::jsonb, (@metadatas::text[])[i]::jsonb,
       NULLIF((@causation_ids::text[])[i], ''), NULLIF((@correlation_ids::text[])[i], '')
FROM base, generate_subscripts(@event_ids::text[], 1) AS i
ORDER BY i
RETURNING version, recorded_at;

-- name: AppendEvent :one
-- AppendEvents for the common single event, with plain parameters instead
-- of arrays: cheaper to encode and to execute.
WITH bumped AS (
    UPDATE keel.streams s
    SET version = s.version + 1, updated_at = now()
    WHERE s.stream_id = @stream_id::text
      AND s.deleted_at IS NULL
      AND (@kind::text IN ('any', 'exists') OR (@kind::text = 'exact' AND s.version = @expected::bigint))
    RETURNING s.version - 1 AS prev
), created AS (
    INSERT INTO keel.streams (stream_id, version)
    SELECT @stream_id::text, 1
    WHERE NOT EXISTS (SELECT 1 FROM bumped)
      AND (@kind::text IN ('any', 'no_stream') OR (@kind::text = 'exact' AND @expected::bigint = 0))
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING 0::bigint AS prev
), base AS (
    SELECT prev FROM bumped
    UNION ALL
    SELECT prev FROM created
), queued AS (
    INSERT INTO keel.unsequenced (stream_id, first_version, event_count)
    SELECT @stream_id::text, base.prev + 1, 1
    FROM base
)
INSERT INTO keel.events (stream_id, version, event_id, type, data, metadata, causation_id, correlation_id)
SELECT @stream_id::text, base.prev + 1, (@event_id::text)::uuid, @type::text,
       (@data::text)::jsonb, (@metadata::text)::jsonb,
       NULLIF(@causation_id::text, ''), NULLIF(@correlation_id::text, '')
FROM base
RETURNING version, recorded_at;

-- name: GetStream :one
-- The state of one stream.
SELECT stream_id, version, truncated_before, deleted_at, created_at, updated_at
FROM keel.streams
WHERE stream_id = @stream_id::text;

-- name: EventsByID :many
-- The events with these ids, wherever they are, for idempotent re-appends.
SELECT event_id, stream_id, version, recorded_at
FROM keel.events
WHERE event_id = ANY(@event_ids::uuid[])
ORDER BY stream_id, version;

-- name: ReadStreamForward :many
-- A stream's events from a version upwards, hiding truncated ones, up to a
-- version and a point in time.
SELECT event_id, stream_id, version, type, data, metadata, causation_id, correlation_id, recorded_at
FROM keel.events
WHERE stream_id = @stream_id::text
  AND version >= GREATEST(@from_version::bigint, @truncated_before::bigint)
  AND version <= @until_version::bigint
  AND recorded_at <= @until_time::timestamptz
ORDER BY version
LIMIT @max_count::bigint;

-- name: ReadStreamBackward :many
-- A stream's events from a version downwards, hiding truncated ones.
SELECT event_id, stream_id, version, type, data, metadata, causation_id, correlation_id, recorded_at
FROM keel.events
WHERE stream_id = @stream_id::text
  AND version <= @from_version::bigint
  AND version >= @truncated_before::bigint
  AND recorded_at <= @until_time::timestamptz
ORDER BY version DESC
LIMIT @max_count::bigint;

-- name: StreamFeed :many
-- The feed rows of a stream's appends that may hold versions from
-- @min_version to @max_version, in version order: the positions of events
-- read from the stream. Appends the sequencer has not reached have none.
SELECT first_version, event_count, last_position
FROM keel.feed
WHERE stream_id = @stream_id::text
  AND first_version <= @max_version::bigint
  AND first_version >= COALESCE((SELECT f.first_version FROM keel.feed f
                                 WHERE f.stream_id = @stream_id::text AND f.first_version <= @min_version::bigint
                                 ORDER BY f.first_version DESC LIMIT 1), @min_version::bigint)
ORDER BY first_version;

-- name: ReadAll :many
-- The global feed after a position, in position order: the events of the
-- feed's appends, skipping deleted streams and truncated events. The feed is
-- walked in position order and each append's events fetched by their
-- stream and versions (OFFSET 0 keeps that nested loop: a planner that
-- misjudges how many events an append holds would otherwise join everything
-- and sort). Hidden streams come from a partial index that holds only the
-- deleted and truncated ones. The appends are picked first, at most
-- max_count of them in position order and none wholly hidden, so each gives
-- at least one event and the final sort holds one page: sorting the joined
-- rows of every append after @after let a planner that believed a category
-- was rare read the category's whole backlog for each page.
SELECT (f.last_position - f.event_count + 1 + (e.version - f.first_version))::bigint AS position,
       e.event_id, e.stream_id, e.version, e.type, e.data, e.metadata,
       e.causation_id, e.correlation_id, e.recorded_at
FROM (
    SELECT a.last_position, a.stream_id, a.first_version, a.event_count
    FROM keel.feed a
    WHERE a.last_position > @after::bigint
      AND a.last_position - a.event_count < @until_position::bigint
      AND NOT EXISTS (SELECT 1 FROM keel.streams h
                      WHERE h.stream_id = a.stream_id
                        AND (h.deleted_at IS NOT NULL OR h.truncated_before > 0)
                        AND (h.deleted_at IS NOT NULL OR h.truncated_before > a.first_version + a.event_count - 1))
    ORDER BY a.last_position
    LIMIT @max_count::bigint
) f
CROSS JOIN LATERAL (
    SELECT ev.event_id, ev.stream_id, ev.version, ev.type, ev.data, ev.metadata,
           ev.causation_id, ev.correlation_id, ev.recorded_at
    FROM keel.events ev
    WHERE ev.stream_id = f.stream_id
      AND ev.version >= GREATEST(f.first_version, f.first_version + (@after::bigint) - (f.last_position - f.event_count))
      AND ev.version <= f.first_version + f.event_count - 1
      AND ev.version - f.first_version <= (@until_position::bigint) - (f.last_position - f.event_count + 1)
      AND NOT EXISTS (SELECT 1 FROM keel.streams s
                      WHERE s.stream_id = ev.stream_id
                        AND (s.deleted_at IS NOT NULL OR s.truncated_before > 0)
                        AND (s.deleted_at IS NOT NULL OR ev.version < s.truncated_before))
    OFFSET 0
) e
ORDER BY f.last_position, e.version
LIMIT @max_count::bigint;

-- name: ReadCategory :many
-- ReadAll restricted to one category's appends whose last position is in
-- the window (window_start, window_end]. The window bounds what one
-- statement may read by construction: a category's appends are sparse in
-- the feed, and a planner that misjudges how many follow the checkpoint
-- could otherwise sort all of them, for every page, to return the first
-- max_count. An append whose last position is in the window is read from
-- after on, wherever it starts. The window's bounds compare (category,
-- position) pairs, which only the category's index can search: on the
-- feed's key they would be a walk of every append in the window.
SELECT (f.last_position - f.event_count + 1 + (e.version - f.first_version))::bigint AS position,
       e.event_id, e.stream_id, e.version, e.type, e.data, e.metadata,
       e.causation_id, e.correlation_id, e.recorded_at
FROM (
    SELECT a.last_position, a.stream_id, a.first_version, a.event_count
    FROM keel.feed a
    WHERE a.category = @category::text
      AND (a.category, a.last_position) > (@category::text, GREATEST(@after::bigint, @window_start::bigint))
      AND (a.category, a.last_position) <= (@category::text, @window_end::bigint)
      AND a.last_position - a.event_count < @until_position::bigint
      AND NOT EXISTS (SELECT 1 FROM keel.streams h
                      WHERE h.stream_id = a.stream_id
                        AND (h.deleted_at IS NOT NULL OR h.truncated_before > 0)
                        AND (h.deleted_at IS NOT NULL OR h.truncated_before > a.first_version + a.event_count - 1))
    ORDER BY a.last_position
    LIMIT @max_count::bigint
) f
CROSS JOIN LATERAL (
    SELECT ev.event_id, ev.stream_id, ev.version, ev.type, ev.data, ev.metadata,
           ev.causation_id, ev.correlation_id, ev.recorded_at
    FROM keel.events ev
    WHERE ev.stream_id = f.stream_id
      AND ev.version >= GREATEST(f.first_version, f.first_version + (@after::bigint) - (f.last_position - f.event_count))
      AND ev.version <= f.first_version + f.event_count - 1
      AND ev.version - f.first_version <= (@until_position::bigint) - (f.last_position - f.event_count + 1)
      AND NOT EXISTS (SELECT 1 FROM keel.streams s
                      WHERE s.stream_id = ev.stream_id
                        AND (s.deleted_at IS NOT NULL OR s.truncated_before > 0)
                        AND (s.deleted_at IS NOT NULL OR ev.version < s.truncated_before))
    OFFSET 0
) e
ORDER BY f.last_position, e.version
LIMIT @max_count::bigint;

-- name: FeedBound :one
-- The last position of the append that holds position @until, or the head
-- when the feed ends before it (0 when it is empty): no append with a later
-- last position holds an event at or before @until. Both are one descent of
-- the feed's key.
SELECT COALESCE((SELECT min(b.last_position) FROM keel.feed b WHERE b.last_position >= @until::bigint),
                (SELECT max(h.last_position) FROM keel.feed h), 0)::bigint;

-- name: HeadPosition :one
-- The newest position of the global feed (0 when none).
SELECT COALESCE(max(last_position), 0)::bigint FROM keel.feed;

-- name: SequenceAppends :execrows
-- The sequencer: moves the committed appends that have no position yet into
-- the feed, in append order, each taking the next event_count positions
-- (the current head plus a running sum, so positions are dense). Appends of
-- transactions still open are invisible to this statement and get their
-- positions on a later pass, after whatever committed before them. Runs only
-- under the sequencer's advisory lock. The picked ids are gathered into an
-- array so the delete reaches each row by primary key (a semi-join may be
-- planned as a scan of the table and every dead row it holds).
WITH head AS (
    SELECT COALESCE(max(last_position), 0) AS position FROM keel.feed
), picked AS (
    DELETE FROM keel.unsequenced
    WHERE append_id = ANY(ARRAY(SELECT u.append_id FROM keel.unsequenced u ORDER BY u.append_id LIMIT @max_count::bigint))
    RETURNING append_id, stream_id, first_version, event_count
)
INSERT INTO keel.feed (last_position, stream_id, first_version, event_count, category)
SELECT head.position + sum(picked.event_count) OVER (ORDER BY picked.append_id),
       picked.stream_id, picked.first_version, picked.event_count, split_part(picked.stream_id, '-', 1)
FROM picked, head;

-- name: TombstoneStream :one
-- Soft-deletes a live stream whose version matches the expectation (kind
-- 'any', 'exists' or 'exact' with @expected); returns nothing otherwise.
UPDATE keel.streams
SET deleted_at = now(), updated_at = now()
WHERE stream_id = @stream_id::text
  AND deleted_at IS NULL
  AND (@kind::text IN ('any', 'exists') OR (@kind::text = 'exact' AND version = @expected::bigint))
RETURNING version;

-- name: TruncateStreamBefore :one
-- Hides a live stream's events below a version; never un-hides.
UPDATE keel.streams
SET truncated_before = GREATEST(truncated_before, @before::bigint), updated_at = now()
WHERE stream_id = @stream_id::text AND deleted_at IS NULL
RETURNING truncated_before;

-- name: SaveSnapshot :exec
-- Keeps a stream's snapshot unless a newer one is already saved.
INSERT INTO keel.snapshots (stream_id, version, state)
VALUES (@stream_id::text, @version::bigint, @state::jsonb)
ON CONFLICT (stream_id) DO UPDATE
SET version = excluded.version, state = excluded.state, saved_at = now()
WHERE keel.snapshots.version < excluded.version;

-- name: LoadSnapshot :one
-- A stream's latest snapshot at or below a version.
SELECT version, state, saved_at
FROM keel.snapshots
WHERE stream_id = @stream_id::text AND version <= @max_version::bigint;

-- name: EnsureSubscription :exec
-- Creates a subscription's row the first time it starts.
INSERT INTO keel.subscriptions (name, category)
VALUES (@name::text, sqlc.narg(category)::text)
ON CONFLICT (name) DO NOTHING;

-- name: ClaimSubscription :one
-- Takes or renews a subscription's lease for @owner when it is free, already
-- @owner's, or its holder's lease ran out. Returns nothing when another
-- consumer holds it.
UPDATE keel.subscriptions
SET owner = @owner::text,
    lease_until = COALESCE(sqlc.narg(now)::timestamptz, now()) + @lease::interval,
    updated_at = now()
WHERE name = @name::text
  AND (owner IS NULL OR owner = @owner::text OR lease_until < COALESCE(sqlc.narg(now)::timestamptz, now()))
RETURNING name, category, position, status, attempts, last_error, failed_position, retry_at, owner, lease_until;

-- name: FenceSubscription :one
-- Starts a batch: locks the subscription's row if @owner still holds it
-- (so no other consumer can take it until the batch commits) and renews the
-- lease. Returns nothing when @owner lost it.
UPDATE keel.subscriptions
SET lease_until = COALESCE(sqlc.narg(now)::timestamptz, now()) + @lease::interval
WHERE name = @name::text AND owner = @owner::text AND status = 'active'
RETURNING category, position;

-- name: AdvanceSubscription :exec
-- Moves the checkpoint after a batch, in the handler's transaction, and
-- clears the failure once the event that failed is handled.
UPDATE keel.subscriptions
SET position = @position::bigint,
    attempts = CASE WHEN @position::bigint >= failed_position THEN 0 ELSE attempts END,
    last_error = CASE WHEN @position::bigint >= failed_position THEN NULL ELSE last_error END,
    retry_at = CASE WHEN @position::bigint >= failed_position THEN NULL ELSE retry_at END,
    failed_position = CASE WHEN @position::bigint >= failed_position THEN NULL ELSE failed_position END,
    updated_at = now()
WHERE name = @name::text AND owner = @owner::text;

-- name: FailSubscription :one
-- Records a handler failure: the next attempt waits until @retry_at, and
-- after @max_attempts failures in a row the subscription is parked.
UPDATE keel.subscriptions
SET attempts = attempts + 1,
    last_error = @last_error::text,
    failed_position = @failed_position::bigint,
    retry_at = @retry_at::timestamptz,
    status = CASE WHEN attempts + 1 >= @max_attempts::integer THEN 'parked' ELSE status END,
    updated_at = now()
WHERE name = @name::text AND owner = @owner::text
RETURNING attempts, status;

-- name: ReleaseSubscription :exec
-- Gives up the lease, so another consumer may take over at once.
UPDATE keel.subscriptions
SET owner = NULL, lease_until = NULL, updated_at = now()
WHERE name = @name::text AND owner = @owner::text;

-- name: ResumeSubscription :one
-- Un-parks a subscription so it retries the event it failed on. Its failure
-- is cleared as a reset clears it: the last error would otherwise read as
-- current while the retry runs; a retry that fails records its own.
UPDATE keel.subscriptions
SET status = 'active', attempts = 0, last_error = NULL, failed_position = NULL, retry_at = NULL, updated_at = now()
WHERE name = @name::text
RETURNING name;

-- name: GetSubscription :one
-- A subscription's row.
SELECT name, category, position, status, attempts, last_error, failed_position, retry_at, owner, lease_until,
       created_at, updated_at
FROM keel.subscriptions
WHERE name = @name::text;

-- name: ListSubscriptions :many
-- Every subscription, parked ones first.
SELECT name, category, position, status, attempts, last_error, failed_position, retry_at, owner, lease_until,
       created_at, updated_at
FROM keel.subscriptions
ORDER BY status = 'parked' DESC, name;

-- name: ResetSubscription :one
-- Moves a subscription's checkpoint (back to 0 to rebuild its projection)
-- and clears its failure. A consumer in the middle of a batch holds the row
-- lock, so the reset waits for that batch to commit.
UPDATE keel.subscriptions
SET position = @position::bigint, status = 'active', attempts = 0, last_error = NULL,
    failed_position = NULL, retry_at = NULL, updated_at = now()
WHERE name = @name::text
RETURNING name;
