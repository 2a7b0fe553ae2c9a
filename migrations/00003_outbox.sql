-- +goose Up
CREATE TYPE keel.outbox_state AS ENUM ('pending', 'delivered', 'dead');
COMMENT ON TYPE keel.outbox_state IS 'pending: waiting to be published (new, claimed or waiting to retry); delivered: published; dead: failed MaxAttempts times, waits for a person (keel outbox requeue).';

CREATE TABLE keel.outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           uuid NOT NULL,
    topic        text NOT NULL CHECK (topic <> '' AND length(topic) <= 255),
    key          text CHECK (key <> ''),
    type         text NOT NULL DEFAULT '',
    payload      bytea NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    state        keel.outbox_state NOT NULL DEFAULT 'pending',
    attempts     integer NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    locked_by    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    last_error   text,
    errors       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(errors) = 'array'),
    CONSTRAINT outbox_id_key UNIQUE (id)
) WITH (fillfactor = 70);
COMMENT ON TABLE keel.outbox IS 'Transactional outbox: messages written in the application''s transaction, published at least once by outbox relays, in enqueue order per key.';
-- Free space in each page lets a claim (which changes no indexed column)
-- be a HOT update that writes no index entries.
COMMENT ON COLUMN keel.outbox.seq IS 'Enqueue order; per-key order follows it.';
COMMENT ON COLUMN keel.outbox.id IS 'Message id (UUIDv7 unless the application gave its own); enqueueing an id twice stores it once.';
COMMENT ON COLUMN keel.outbox.topic IS 'Destination the publisher sends the message to (a Kafka topic, a NATS subject, a URL name …).';
COMMENT ON COLUMN keel.outbox.key IS 'Order key (an aggregate id, say): a message is not published while an earlier message with the same key is undelivered. NULL: no order.';
COMMENT ON COLUMN keel.outbox.type IS 'Message type, for consumers.';
COMMENT ON COLUMN keel.outbox.payload IS 'Message body, as the application gave it.';
COMMENT ON COLUMN keel.outbox.headers IS 'Message headers, a JSON object of strings.';
COMMENT ON COLUMN keel.outbox.state IS 'pending, delivered or dead.';
COMMENT ON COLUMN keel.outbox.attempts IS 'Publish attempts so far, counted when a relay claims the message.';
COMMENT ON COLUMN keel.outbox.available_at IS 'Not published before this time: the not-before time, or the next retry after a failure.';
COMMENT ON COLUMN keel.outbox.locked_until IS 'Lease of the relay publishing it now; once past, another relay may take the message again.';
COMMENT ON COLUMN keel.outbox.locked_by IS 'Name of the relay that holds or last held the lease.';
COMMENT ON COLUMN keel.outbox.created_at IS 'When the message was enqueued.';
COMMENT ON COLUMN keel.outbox.delivered_at IS 'When the publisher accepted it.';
COMMENT ON COLUMN keel.outbox.last_error IS 'Error of the latest failed attempt.';
COMMENT ON COLUMN keel.outbox.errors IS 'Every failed attempt: [{"attempt": n, "at": time, "error": text}].';

CREATE INDEX outbox_pending_idx ON keel.outbox (seq) WHERE state = 'pending';
COMMENT ON INDEX keel.outbox_pending_idx IS 'Relays scan pending messages in enqueue order.';
CREATE INDEX outbox_pending_key_idx ON keel.outbox (key, seq) WHERE state = 'pending' AND key IS NOT NULL;
COMMENT ON INDEX keel.outbox_pending_key_idx IS 'Finds an earlier undelivered message of the same key.';
CREATE INDEX outbox_delivered_idx ON keel.outbox (delivered_at) WHERE state = 'delivered';
COMMENT ON INDEX keel.outbox_delivered_idx IS 'Retention deletes delivered messages by age.';
CREATE INDEX outbox_dead_idx ON keel.outbox (seq) WHERE state = 'dead';
COMMENT ON INDEX keel.outbox_dead_idx IS 'Dead letters, for people and the CLI.';

CREATE TABLE keel.inbox (
    consumer     text NOT NULL CHECK (consumer <> ''),
    message_id   text NOT NULL CHECK (message_id <> ''),
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
COMMENT ON TABLE keel.inbox IS 'Consumer-side inbox: one row per message a consumer processed, written in the same transaction as the consumer''s own writes, so a redelivered message is recognised and skipped.';
COMMENT ON COLUMN keel.inbox.consumer IS 'Name of the consumer (a message may be processed once by each consumer).';
COMMENT ON COLUMN keel.inbox.message_id IS 'Id of the processed message.';
COMMENT ON COLUMN keel.inbox.processed_at IS 'When it was processed; rows older than the dedup window are deleted.';
CREATE INDEX inbox_processed_at_idx ON keel.inbox (processed_at);
COMMENT ON INDEX keel.inbox_processed_at_idx IS 'Expiry of seen-records past the dedup window.';

-- +goose Down
DROP TABLE keel.inbox;
DROP TABLE keel.outbox;
DROP TYPE keel.outbox_state;
