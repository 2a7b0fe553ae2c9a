-- +goose Up
-- Length limits, in bytes, on the text a caller chooses and keel indexes.
--
-- A btree entry larger than about 2,700 bytes fails the insert (54000) and
-- aborts the caller's transaction. keel refuses longer values before it
-- sends anything (internal/validate names the limits); these constraints
-- are the second line, for rows written by hand or by an older client.
-- They are added NOT VALID: rows already stored are not scanned, every new
-- or updated row is checked.
ALTER TABLE keel.jobs ADD CONSTRAINT jobs_unique_key_length CHECK (octet_length(unique_key) <= 1024) NOT VALID;
ALTER TABLE keel.outbox ADD CONSTRAINT outbox_key_length CHECK (octet_length(key) <= 1024) NOT VALID;
ALTER TABLE keel.outbox ADD CONSTRAINT outbox_type_length CHECK (octet_length(type) <= 255) NOT VALID;
ALTER TABLE keel.inbox ADD CONSTRAINT inbox_consumer_length CHECK (octet_length(consumer) <= 255) NOT VALID;
ALTER TABLE keel.inbox ADD CONSTRAINT inbox_message_id_length CHECK (octet_length(message_id) <= 1024) NOT VALID;
ALTER TABLE keel.streams ADD CONSTRAINT streams_stream_id_length CHECK (octet_length(stream_id) <= 1024) NOT VALID;
ALTER TABLE keel.events ADD CONSTRAINT events_type_length CHECK (octet_length(type) <= 255) NOT VALID;
ALTER TABLE keel.events ADD CONSTRAINT events_causation_id_length CHECK (octet_length(causation_id) <= 1024) NOT VALID;
ALTER TABLE keel.events ADD CONSTRAINT events_correlation_id_length CHECK (octet_length(correlation_id) <= 1024) NOT VALID;
ALTER TABLE keel.subscriptions ADD CONSTRAINT subscriptions_name_length CHECK (octet_length(name) <= 255) NOT VALID;
ALTER TABLE keel.subscriptions ADD CONSTRAINT subscriptions_category_length CHECK (octet_length(category) <= 1024) NOT VALID;
ALTER TABLE keel.saga_runs ADD CONSTRAINT saga_runs_queue_length CHECK (queue <> '' AND octet_length(queue) <= 128) NOT VALID;
ALTER TABLE keel.saga_signals ADD CONSTRAINT saga_signals_name_length CHECK (octet_length(name) <= 255) NOT VALID;
ALTER TABLE keel.saga_signals ADD CONSTRAINT saga_signals_idempotency_key_length CHECK (octet_length(idempotency_key) <= 1024) NOT VALID;
ALTER TABLE keel.saga_values ADD CONSTRAINT saga_values_name_length CHECK (octet_length(name) <= 255) NOT VALID;

-- +goose Down
ALTER TABLE keel.saga_values DROP CONSTRAINT saga_values_name_length;
ALTER TABLE keel.saga_signals DROP CONSTRAINT saga_signals_idempotency_key_length;
ALTER TABLE keel.saga_signals DROP CONSTRAINT saga_signals_name_length;
ALTER TABLE keel.saga_runs DROP CONSTRAINT saga_runs_queue_length;
ALTER TABLE keel.subscriptions DROP CONSTRAINT subscriptions_category_length;
ALTER TABLE keel.subscriptions DROP CONSTRAINT subscriptions_name_length;
ALTER TABLE keel.events DROP CONSTRAINT events_correlation_id_length;
ALTER TABLE keel.events DROP CONSTRAINT events_causation_id_length;
ALTER TABLE keel.events DROP CONSTRAINT events_type_length;
ALTER TABLE keel.streams DROP CONSTRAINT streams_stream_id_length;
ALTER TABLE keel.inbox DROP CONSTRAINT inbox_message_id_length;
ALTER TABLE keel.inbox DROP CONSTRAINT inbox_consumer_length;
ALTER TABLE keel.outbox DROP CONSTRAINT outbox_type_length;
ALTER TABLE keel.outbox DROP CONSTRAINT outbox_key_length;
ALTER TABLE keel.jobs DROP CONSTRAINT jobs_unique_key_length;
