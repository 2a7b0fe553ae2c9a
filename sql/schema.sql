-- name: ListRelations :many
-- Every table and view in the keel schema, with the comment that explains it;
-- the partitions of a partitioned table are left out (keel partition list).
SELECT
    c.relname::text AS name,
    (CASE c.relkind
        WHEN 'r' THEN 'table'
        WHEN 'p' THEN 'table'
        WHEN 'v' THEN 'view'
        WHEN 'm' THEN 'materialized view'
        ELSE 'other'
    END)::text AS kind,
    COALESCE(obj_description(c.oid, 'pg_class'), '')::text AS comment
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'keel' AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
ORDER BY c.relname;

-- name: SchemaExists :one
-- Whether the keel schema exists at all (false before the first migration).
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'keel');

-- name: TableExists :one
-- Whether a table of that name exists in the given schema.
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = @schema_name::text AND tablename = @table_name::text
);
