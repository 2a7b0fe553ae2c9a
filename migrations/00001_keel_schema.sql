-- +goose Up
CREATE SCHEMA IF NOT EXISTS keel;
COMMENT ON SCHEMA keel IS 'keel: outbox, inbox, jobs, sagas and events. Managed by keel''s migrations, whose applied versions are recorded in public.keel_db_version.';

-- +goose Down
DROP SCHEMA keel;
