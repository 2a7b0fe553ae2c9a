-- +goose Up
CREATE TABLE keel.streams (
    stream_id        text        PRIMARY KEY CHECK (stream_id <> ''),
    version          bigint      NOT NULL CHECK (version >= 0),
    truncated_before bigint      NOT NULL DEFAULT 0 CHECK (truncated_before >= 0),
    deleted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE keel.streams IS 'keel event store: one row per stream, holding its current version. Appends lock and bump this row, so versions in a stream have no holes.';
COMMENT ON COLUMN keel.streams.stream_id IS 'The stream''s id; its category is the part before the first ''-''.';
COMMENT ON COLUMN keel.streams.version IS 'Version of the stream''s newest event (events are numbered 1, 2, 3 …).';
COMMENT ON COLUMN keel.streams.truncated_before IS 'Events with a version below this are hidden from every read (truncate-before); 0 hides none.';
COMMENT ON COLUMN keel.streams.deleted_at IS 'When the stream was soft-deleted (tombstoned); reads skip it and appends are refused. NULL while it lives.';
COMMENT ON COLUMN keel.streams.created_at IS 'When the stream''s first event was appended.';
COMMENT ON COLUMN keel.streams.updated_at IS 'When the stream last changed (append, truncate, tombstone).';

CREATE TABLE keel.events (
    seq            bigserial   PRIMARY KEY,
    position       bigint      UNIQUE,
    event_id       uuid        NOT NULL UNIQUE,
    stream_id      text        NOT NULL,
    category       text        NOT NULL GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    version        bigint      NOT NULL CHECK (version > 0),
    type           text        NOT NULL CHECK (type <> ''),
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    causation_id   text,
    correlation_id text,
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (stream_id, version)
);
COMMENT ON TABLE keel.events IS 'keel event store: every event of every stream. Writers insert with no position; the sequencer stamps committed rows with dense global positions in insert order.';
COMMENT ON COLUMN keel.events.seq IS 'Insert order, handed out when the row is written (not when it commits); the sequencer stamps positions in this order.';
COMMENT ON COLUMN keel.events.position IS 'Position in the global feed: dense, gap-free and in the order events became visible. NULL until the sequencer stamps the row; the feed shows stamped rows only.';
COMMENT ON COLUMN keel.events.event_id IS 'The event''s id (UUIDv7 unless the writer chose one); appending the same id again is idempotent.';
COMMENT ON COLUMN keel.events.stream_id IS 'The stream the event belongs to. The append statement that inserts an event creates or locks its keel.streams row, so no foreign key trigger runs per event.';
COMMENT ON COLUMN keel.events.category IS 'The stream id up to its first ''-'' (order-123 belongs to order).';
COMMENT ON COLUMN keel.events.version IS 'The event''s version in its stream: 1, 2, 3 … with no holes.';
COMMENT ON COLUMN keel.events.type IS 'The event''s type name, e.g. OrderPlaced.';
COMMENT ON COLUMN keel.events.data IS 'The event''s payload.';
COMMENT ON COLUMN keel.events.metadata IS 'The writer''s metadata about the event (a JSON object).';
COMMENT ON COLUMN keel.events.causation_id IS 'Id of the message or event that caused this one, when the writer gave it.';
COMMENT ON COLUMN keel.events.correlation_id IS 'Id shared by every message and event of one conversation, when the writer gave it.';
COMMENT ON COLUMN keel.events.recorded_at IS 'When the event was written (clock time of the insert, so it grows with the version within a stream).';

CREATE INDEX events_unstamped ON keel.events (seq) WHERE position IS NULL;
COMMENT ON INDEX keel.events_unstamped IS 'The rows the sequencer has still to stamp.';
CREATE INDEX events_category_position ON keel.events (category, position) WHERE position IS NOT NULL;
COMMENT ON INDEX keel.events_category_position IS 'Category reads and category subscriptions, in feed order.';

CREATE TABLE keel.snapshots (
    stream_id text        PRIMARY KEY REFERENCES keel.streams (stream_id),
    version   bigint      NOT NULL CHECK (version > 0),
    state     jsonb       NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE keel.snapshots IS 'keel event store: the latest snapshot of a stream''s state; loading replays only the events after it.';
COMMENT ON COLUMN keel.snapshots.stream_id IS 'The stream the state was folded from.';
COMMENT ON COLUMN keel.snapshots.version IS 'The version of the last event folded into the state.';
COMMENT ON COLUMN keel.snapshots.state IS 'The folded state.';
COMMENT ON COLUMN keel.snapshots.saved_at IS 'When the snapshot was saved.';

CREATE TABLE keel.subscriptions (
    name            text        PRIMARY KEY CHECK (name <> ''),
    category        text,
    position        bigint      NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'parked')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    failed_position bigint,
    retry_at        timestamptz,
    owner           text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE keel.subscriptions IS 'keel event store: durable catch-up subscriptions over the global feed or one category, with their checkpoint, lease and failure state.';
COMMENT ON COLUMN keel.subscriptions.name IS 'The subscription''s name, chosen by the application.';
COMMENT ON COLUMN keel.subscriptions.category IS 'The category it follows; NULL follows the whole feed.';
COMMENT ON COLUMN keel.subscriptions.position IS 'Checkpoint: the feed position of the last event handled. Advanced in the handler''s own transaction.';
COMMENT ON COLUMN keel.subscriptions.status IS 'active, or parked: the handler kept failing and the subscription waits for a person (see last_error).';
COMMENT ON COLUMN keel.subscriptions.attempts IS 'Failed attempts in a row at the event at failed_position.';
COMMENT ON COLUMN keel.subscriptions.last_error IS 'The handler''s last error, kept until an event is handled.';
COMMENT ON COLUMN keel.subscriptions.failed_position IS 'Feed position of the event the handler failed on.';
COMMENT ON COLUMN keel.subscriptions.retry_at IS 'After a failure, when the next attempt may run.';
COMMENT ON COLUMN keel.subscriptions.owner IS 'The consumer that holds the lease: only it handles events.';
COMMENT ON COLUMN keel.subscriptions.lease_until IS 'When the owner''s lease runs out; another consumer may take over after it.';
COMMENT ON COLUMN keel.subscriptions.created_at IS 'When the subscription was first started.';
COMMENT ON COLUMN keel.subscriptions.updated_at IS 'When the row last changed.';

-- +goose Down
DROP TABLE keel.subscriptions;
DROP TABLE keel.snapshots;
DROP TABLE keel.events;
DROP TABLE keel.streams;
