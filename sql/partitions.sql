-- Native partitioning of keel.jobs and keel.outbox (migration 00011): the
-- functions that convert a table and the ones its retention calls.

-- name: TablePartitioned :one
-- Whether keel.jobs or keel.outbox has been converted to partitions.
SELECT EXISTS (
    SELECT 1 FROM keel.partitioning WHERE table_name = @table_name::text AND converted_at IS NOT NULL
);

-- name: PartitionExtend :one
-- Creates partitions until two whole ones lie ahead of the table's sequence.
SELECT keel.partition_extend(@table_name::text)::integer AS created;

-- name: PartitionDropExpired :one
-- Drops the partitions whose rows are all final and expired; before holds
-- one cutoff per final state (jobs: completed, cancelled, discarded;
-- outbox: delivered), NULL to keep that state for ever.
SELECT keel.partition_drop_expired(@table_name::text, @before::timestamptz[])::integer AS dropped;

-- name: PartitionPrepare :one
SELECT keel.partition_prepare(@table_name::text, @partition_rows::bigint)::bigint AS history_bound;

-- name: PartitionValidate :exec
SELECT keel.partition_validate(@table_name::text);

-- name: PartitionConvert :exec
SELECT keel.partition_convert(@table_name::text);

-- name: ListPartitions :many
-- The partitions of keel.jobs and keel.outbox, oldest first, with the rows
-- the statistics estimate (-1: never analysed). A partition being dropped
-- while this reads is left out.
SELECT
    p.relname::text AS table_name,
    c.relname::text AS partition_name,
    COALESCE(pg_catalog.pg_get_expr(c.relpartbound, c.oid), '')::text AS bound,
    c.reltuples::bigint AS estimated_rows,
    COALESCE(pg_catalog.pg_total_relation_size(c.oid), 0)::bigint AS total_bytes
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
JOIN pg_catalog.pg_namespace n ON n.oid = p.relnamespace
WHERE n.nspname = 'keel' AND p.relname IN ('jobs', 'outbox')
  AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) IS NOT NULL
ORDER BY p.relname, c.oid;
