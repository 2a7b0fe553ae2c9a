-- +goose Up
-- The global feed moves out of keel.events into a narrow table with one row
-- per append. Appends insert each event once and queue one small row;
-- the sequencer turns queued rows into feed rows instead of rewriting every
-- event row to stamp its position.
CREATE TABLE keel.unsequenced (
    append_id     bigserial PRIMARY KEY,
    stream_id     text      NOT NULL,
    first_version bigint    NOT NULL CHECK (first_version > 0),
    event_count   integer   NOT NULL CHECK (event_count > 0)
);
COMMENT ON TABLE keel.unsequenced IS 'keel event store: appends whose events have no feed position yet, one row per append. The sequencer moves committed rows into keel.feed in append_id order; rows of open transactions wait for a later pass.';
COMMENT ON COLUMN keel.unsequenced.append_id IS 'Append order, handed out when the append is written (after it locked its stream), not when it commits.';
COMMENT ON COLUMN keel.unsequenced.stream_id IS 'The stream appended to.';
COMMENT ON COLUMN keel.unsequenced.first_version IS 'The version of the append''s first event.';
COMMENT ON COLUMN keel.unsequenced.event_count IS 'How many events the append wrote; their versions follow first_version without holes.';

CREATE TABLE keel.feed (
    last_position bigint  PRIMARY KEY,
    stream_id     text    NOT NULL,
    first_version bigint  NOT NULL CHECK (first_version > 0),
    event_count   integer NOT NULL CHECK (event_count > 0),
    category      text    NOT NULL,
    UNIQUE (stream_id, first_version)
);
COMMENT ON TABLE keel.feed IS 'keel event store: the global feed, one row per append, in position order. The events of a row hold positions last_position - event_count + 1 … last_position, in version order. Positions are dense, gap-free and follow the order in which appends became visible; keel.event_feed lists them per event.';
COMMENT ON COLUMN keel.feed.last_position IS 'Feed position of the append''s last event.';
COMMENT ON COLUMN keel.feed.stream_id IS 'The stream appended to.';
COMMENT ON COLUMN keel.feed.first_version IS 'Version of the append''s first event; the event at position last_position - event_count + 1.';
COMMENT ON COLUMN keel.feed.event_count IS 'How many events the append wrote.';
COMMENT ON COLUMN keel.feed.category IS 'The stream id up to its first ''-'' (order-123 belongs to order), for category reads.';
CREATE INDEX feed_category ON keel.feed (category, last_position);
COMMENT ON INDEX keel.feed_category IS 'Category reads and category subscriptions, in feed order.';
CREATE INDEX streams_hidden ON keel.streams (stream_id) WHERE deleted_at IS NOT NULL OR truncated_before > 0;
COMMENT ON INDEX keel.streams_hidden IS 'The deleted and truncated streams, whose events feed reads leave out; small, so checking it per event is cheap.';

INSERT INTO keel.feed (last_position, stream_id, first_version, event_count, category)
SELECT position, stream_id, version, 1, category
FROM keel.events
WHERE position IS NOT NULL;

INSERT INTO keel.unsequenced (stream_id, first_version, event_count)
SELECT stream_id, version, 1
FROM keel.events
WHERE position IS NULL
ORDER BY seq;

DROP VIEW keel.subscription_lag;
ALTER TABLE keel.events DROP CONSTRAINT events_pkey;
ALTER TABLE keel.events DROP CONSTRAINT events_stream_id_version_key;
ALTER TABLE keel.events DROP COLUMN seq;
ALTER TABLE keel.events DROP COLUMN position;
ALTER TABLE keel.events DROP COLUMN category;
ALTER TABLE keel.events ADD PRIMARY KEY (stream_id, version);
COMMENT ON TABLE keel.events IS 'keel event store: every event of every stream, written once by its append. Feed positions live in keel.feed.';

CREATE VIEW keel.event_feed AS
SELECT f.last_position - f.event_count + 1 + (e.version - f.first_version) AS position,
       e.stream_id, e.version, f.category, e.type, e.data, e.metadata,
       e.event_id, e.causation_id, e.correlation_id, e.recorded_at
FROM keel.feed f
JOIN keel.events e
  ON e.stream_id = f.stream_id
 AND e.version BETWEEN f.first_version AND f.first_version + f.event_count - 1;
COMMENT ON VIEW keel.event_feed IS 'Every event that has a feed position, with it; ORDER BY position reads the global feed.';

CREATE VIEW keel.subscription_lag AS
SELECT s.name,
       s.category,
       s.status,
       s.position,
       (SELECT COALESCE(sum(LEAST(f.event_count, f.last_position - s.position)), 0)::bigint FROM keel.feed f
         WHERE f.last_position > s.position AND (s.category IS NULL OR f.category = s.category)) AS behind,
       (now() - (SELECT e.recorded_at
                   FROM keel.feed f
                   JOIN keel.events e
                     ON e.stream_id = f.stream_id
                    AND e.version = f.first_version + GREATEST(s.position - (f.last_position - f.event_count), 0)
                  WHERE f.last_position > s.position AND (s.category IS NULL OR f.category = s.category)
                  ORDER BY f.last_position LIMIT 1))::interval AS lag,
       s.owner,
       s.last_error
FROM keel.subscriptions s;
COMMENT ON VIEW keel.subscription_lag IS 'Each event subscription: its checkpoint, how many events of its feed or category it has yet to handle, how long the oldest of them has waited, and why it is parked if it is.';

-- +goose Down
DROP VIEW keel.subscription_lag;
DROP VIEW keel.event_feed;
DROP INDEX keel.streams_hidden;
ALTER TABLE keel.events DROP CONSTRAINT events_pkey;
ALTER TABLE keel.events ADD COLUMN seq bigint;
ALTER TABLE keel.events ADD COLUMN position bigint;
ALTER TABLE keel.events ADD COLUMN category text GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED;
UPDATE keel.events e
SET position = f.last_position - f.event_count + 1 + (e.version - f.first_version)
FROM keel.feed f
WHERE f.stream_id = e.stream_id
  AND e.version BETWEEN f.first_version AND f.first_version + f.event_count - 1;
CREATE SEQUENCE keel.events_seq_seq OWNED BY keel.events.seq;
UPDATE keel.events e
SET seq = o.seq
FROM (
    SELECT ev.stream_id, ev.version,
           row_number() OVER (ORDER BY ev.position NULLS LAST, u.append_id, ev.version) AS seq
    FROM keel.events ev
    LEFT JOIN keel.unsequenced u
      ON u.stream_id = ev.stream_id
     AND ev.version BETWEEN u.first_version AND u.first_version + u.event_count - 1
) o
WHERE o.stream_id = e.stream_id AND o.version = e.version;
SELECT setval('keel.events_seq_seq', COALESCE(max(seq), 0) + 1, false) FROM keel.events;
ALTER TABLE keel.events ALTER COLUMN seq SET DEFAULT nextval('keel.events_seq_seq');
ALTER TABLE keel.events ALTER COLUMN seq SET NOT NULL;
ALTER TABLE keel.events ADD PRIMARY KEY (seq);
ALTER TABLE keel.events ADD UNIQUE (position);
ALTER TABLE keel.events ADD UNIQUE (stream_id, version);
CREATE INDEX events_unstamped ON keel.events (seq) WHERE position IS NULL;
CREATE INDEX events_category_position ON keel.events (category, position) WHERE position IS NOT NULL;
COMMENT ON TABLE keel.events IS 'keel event store: every event of every stream. Writers insert with no position; the sequencer stamps committed rows with dense global positions in insert order.';
COMMENT ON COLUMN keel.events.seq IS 'Insert order, handed out when the row is written (not when it commits); the sequencer stamps positions in this order.';
COMMENT ON COLUMN keel.events.position IS 'Position in the global feed: dense, gap-free and in the order events became visible. NULL until the sequencer stamps the row; the feed shows stamped rows only.';
COMMENT ON COLUMN keel.events.category IS 'The stream id up to its first ''-'' (order-123 belongs to order).';
COMMENT ON INDEX keel.events_unstamped IS 'The rows the sequencer has still to stamp.';
COMMENT ON INDEX keel.events_category_position IS 'Category reads and category subscriptions, in feed order.';
DROP TABLE keel.feed;
DROP TABLE keel.unsequenced;
CREATE VIEW keel.subscription_lag AS
SELECT s.name,
       s.category,
       s.status,
       s.position,
       (SELECT count(*) FROM keel.events e
         WHERE e.position > s.position AND (s.category IS NULL OR e.category = s.category)) AS behind,
       (now() - (SELECT e.recorded_at FROM keel.events e
                  WHERE e.position > s.position AND (s.category IS NULL OR e.category = s.category)
                  ORDER BY e.position LIMIT 1))::interval AS lag,
       s.owner,
       s.last_error
FROM keel.subscriptions s;
COMMENT ON VIEW keel.subscription_lag IS 'Each event subscription: its checkpoint, how many events of its feed or category it has yet to handle, how long the oldest of them has waited, and why it is parked if it is.';
