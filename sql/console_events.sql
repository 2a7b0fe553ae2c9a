-- Queries the console's events pages run, several times a minute while a
-- page is open. Each reads a page of the feed down its key or a category's
-- index, the appends waiting for the sequencer, or the subscriptions: never
-- the whole history of events.

-- name: ConsoleFeed :many
-- The newest events of the global feed at or below position @last, newest
-- first, without their data. The appends are walked down the feed's key
-- from the one that holds @last (found in one descent), and each append's
-- events fetched by (stream_id, version), newest first; at most @max_count
-- appends, each giving at least one event, so one page is sorted. Events
-- of deleted streams and truncated events are left out, as ReadAll leaves
-- them out; hidden streams come from streams_hidden.
SELECT (f.last_position - f.event_count + 1 + (e.version - f.first_version))::bigint AS position,
       e.stream_id, e.version, e.type, e.recorded_at
FROM (
    SELECT a.last_position, a.stream_id, a.first_version, a.event_count
    FROM keel.feed a
    WHERE a.last_position <= COALESCE((SELECT min(b.last_position) FROM keel.feed b WHERE b.last_position >= @last::bigint), @last::bigint)
      AND NOT EXISTS (SELECT 1 FROM keel.streams h
                      WHERE h.stream_id = a.stream_id
                        AND (h.deleted_at IS NOT NULL OR h.truncated_before > 0)
                        AND (h.deleted_at IS NOT NULL OR h.truncated_before > a.first_version + a.event_count - 1))
    ORDER BY a.last_position DESC
    LIMIT @max_count::bigint
) f
CROSS JOIN LATERAL (
    SELECT ev.stream_id, ev.version, ev.type, ev.recorded_at
    FROM keel.events ev
    WHERE ev.stream_id = f.stream_id
      AND ev.version >= f.first_version
      AND ev.version <= LEAST(f.first_version + f.event_count - 1, f.first_version + (@last::bigint) - (f.last_position - f.event_count + 1))
      AND NOT EXISTS (SELECT 1 FROM keel.streams s
                      WHERE s.stream_id = ev.stream_id
                        AND (s.deleted_at IS NOT NULL OR s.truncated_before > 0)
                        AND (s.deleted_at IS NOT NULL OR ev.version < s.truncated_before))
    ORDER BY ev.version DESC
    LIMIT @max_count::bigint
) e
ORDER BY f.last_position DESC, e.version DESC
LIMIT @max_count::bigint;

-- name: ConsoleCategoryFeed :many
-- ConsoleFeed restricted to one category's appends, walked down
-- feed_category from the category's append that holds @last or the first
-- below it. The appends, and the one that holds @last, are bounded and
-- ordered by (category, position) pairs, with no equality on the category,
-- so that only feed_category can serve them: with one, a generic plan that
-- believed the category common walked the feed's key from @last, over
-- every other category's appends, to find a rare category's few.
SELECT (f.last_position - f.event_count + 1 + (e.version - f.first_version))::bigint AS position,
       e.stream_id, e.version, e.type, e.recorded_at
FROM (
    SELECT a.last_position, a.stream_id, a.first_version, a.event_count
    FROM keel.feed a
    WHERE (a.category, a.last_position) > (@category::text, 0)
      AND (a.category, a.last_position) <= (@category::text, COALESCE(
              (SELECT x.last_position
               FROM (SELECT b.category, b.last_position FROM keel.feed b
                     WHERE (b.category, b.last_position) >= (@category::text, @last::bigint)
                     ORDER BY b.category, b.last_position LIMIT 1) x
               WHERE x.category = @category::text), @last::bigint))
      AND NOT EXISTS (SELECT 1 FROM keel.streams h
                      WHERE h.stream_id = a.stream_id
                        AND (h.deleted_at IS NOT NULL OR h.truncated_before > 0)
                        AND (h.deleted_at IS NOT NULL OR h.truncated_before > a.first_version + a.event_count - 1))
    ORDER BY a.category DESC, a.last_position DESC
    LIMIT @max_count::bigint
) f
CROSS JOIN LATERAL (
    SELECT ev.stream_id, ev.version, ev.type, ev.recorded_at
    FROM keel.events ev
    WHERE ev.stream_id = f.stream_id
      AND ev.version >= f.first_version
      AND ev.version <= LEAST(f.first_version + f.event_count - 1, f.first_version + (@last::bigint) - (f.last_position - f.event_count + 1))
      AND NOT EXISTS (SELECT 1 FROM keel.streams s
                      WHERE s.stream_id = ev.stream_id
                        AND (s.deleted_at IS NOT NULL OR s.truncated_before > 0)
                        AND (s.deleted_at IS NOT NULL OR ev.version < s.truncated_before))
    ORDER BY ev.version DESC
    LIMIT @max_count::bigint
) e
ORDER BY f.last_position DESC, e.version DESC
LIMIT @max_count::bigint;

-- name: ConsoleUnsequenced :one
-- Appends committed or not that wait for the sequencer to give them
-- positions: a queue that stays short while some process sequences.
SELECT count(*)::bigint FROM keel.unsequenced;

-- name: ConsoleSubscriptions :many
-- Every subscription, parked ones first, with how many events of its feed
-- or category it has yet to handle and how long the oldest of them has
-- waited — what keel.subscription_lag says, planned per kind: a
-- subscription to the whole feed is behind by the head less its checkpoint
-- (positions are dense), one to a category counts that category's appends
-- past its checkpoint: the (category, position) pairs between its
-- checkpoint and the category's end in feed_category. The oldest event
-- waiting for a category subscription is the next pair there, one descent;
-- it belongs to another category when none waits. Said with an equality on
-- the category, a planner that believed the category rare walked the
-- feed's key from the checkpoint over every other category's appends.
SELECT s.name, s.category, s.status, s.position, s.attempts, s.last_error, s.failed_position, s.retry_at,
       s.owner, s.lease_until, s.updated_at,
       (CASE WHEN s.category IS NULL
             THEN GREATEST((SELECT COALESCE(max(h.last_position), 0) FROM keel.feed h) - s.position, 0)
             ELSE (SELECT COALESCE(sum(LEAST(c.event_count, c.last_position - s.position)), 0) FROM keel.feed c
                    WHERE (c.category, c.last_position) > (s.category, s.position)
                      AND (c.category, c.last_position) <= (s.category, 9223372036854775807::bigint))
        END)::bigint AS behind,
       (now() - (CASE WHEN s.category IS NULL
             THEN (SELECT e.recorded_at FROM keel.feed g
                   JOIN keel.events e ON e.stream_id = g.stream_id
                    AND e.version = g.first_version + GREATEST(s.position - (g.last_position - g.event_count), 0)
                   WHERE g.last_position > s.position
                   ORDER BY g.last_position LIMIT 1)
             ELSE (SELECT e.recorded_at
                   FROM (SELECT n.category, n.stream_id, n.first_version, n.last_position, n.event_count FROM keel.feed n
                         WHERE (n.category, n.last_position) > (s.category, s.position)
                         ORDER BY n.category, n.last_position LIMIT 1) f
                   JOIN keel.events e ON e.stream_id = f.stream_id
                    AND e.version = f.first_version + GREATEST(s.position - (f.last_position - f.event_count), 0)
                   WHERE f.category = s.category)
        END))::interval AS lag
FROM keel.subscriptions s
ORDER BY s.status = 'parked' DESC, s.name;
