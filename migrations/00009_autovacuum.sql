-- +goose Up
-- Autovacuum settings for the tables whose rows keel itself churns.
--
-- Autovacuum's defaults vacuum a table once a fifth of it is dead. A job or
-- an outbox message leaves two or three dead row versions behind within
-- milliseconds of its insert, and a saga run one per step, so on a table
-- that holds a day of history a fifth is millions of dead versions: the
-- claim's and the relay's index scans step over them, and the table and its
-- indexes grow between vacuums. These tables are vacuumed after 2 % of
-- their rows (and at least 10,000) died, and after 2 % were inserted, so
-- the visibility map stays current for the finished history and a vacuum
-- skips it. A table that holds only work in flight (keel.unsequenced) is
-- vacuumed after a fixed 10,000 dead rows, however small it is.
ALTER TABLE keel.jobs SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE keel.outbox SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE keel.saga_runs SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE keel.unsequenced SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);

-- +goose Down
ALTER TABLE keel.jobs RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor
);
ALTER TABLE keel.outbox RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor
);
ALTER TABLE keel.saga_runs RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor
);
ALTER TABLE keel.unsequenced RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
