-- +goose Up
-- Native partitioning of keel.jobs and keel.outbox, for installations whose
-- history runs past about 10^8 rows. It is opt-in: nothing changes until an
-- operator converts a table (keel partition, or migrations.Partition), and a
-- table that is never converted keeps the plain layout and the plain,
-- row-by-row retention.
--
-- A converted table is partitioned by RANGE on its key (keel.jobs.id,
-- keel.outbox.seq). Keys grow with time, so each partition holds the rows
-- inserted over one stretch of time, and retention drops a partition once
-- every row in it is final and past its retention: one catalogue change in
-- place of millions of deletes, with no dead rows left for vacuum. The table
-- as it was becomes the first partition, "<table>_history", covering every
-- key below the bound fixed when the conversion was prepared.
--
-- What partitioning costs, and why it is not the default:
--   * every statement that cannot name its partitions (the claim, the
--     relay's scan, a lookup by unique key or message id) reads one index
--     per partition, so keep the partitions few (tens, not hundreds) by
--     choosing partition_rows near what the table takes in between two
--     retention periods;
--   * a partition is dropped only when all its rows are done: a job
--     scheduled for next month, a job still retrying or an outbox dead
--     letter keeps its partition (and the finished rows beside it) until it
--     is final and expired;
--   * creating and dropping partitions takes a brief ACCESS EXCLUSIVE lock
--     on the parent, attempted with a 200 ms lock_timeout so workers never
--     queue behind it for longer; a failed attempt is repeated on the next
--     pass. The conversion's two short steps wait at most 500 ms for their
--     locks (a transaction that inserts while holding the table could
--     otherwise deadlock with them) and are retried;
--   * unique keys of jobs hold across partitions through
--     keel.job_unique_keys (maintained by triggers); the outbox's message id
--     is unique within its partition only, so a message enqueued again with
--     the same id after its first copy's partition closed is stored and
--     published again (delivery is at least once in any case; the inbox
--     makes it once in effect);
--   * partitions are created ahead of the key's sequence by the retention
--     pass of the jobs client and of the relay, two whole partitions ahead,
--     once a minute: an installation that converts a table must run one of
--     them. Keys that outrun them (a burst of more than two partitions in a
--     minute) land in the default partition, "<table>_default", which is
--     emptied once its rows all expired; choose partition_rows well above a
--     minute's inserts.

CREATE TABLE keel.partitioning (
    table_name     text PRIMARY KEY CHECK (table_name IN ('jobs', 'outbox')),
    partition_rows bigint NOT NULL CHECK (partition_rows >= 1000),
    history_bound  bigint NOT NULL,
    next_lower     bigint NOT NULL,
    reloptions     text[],
    local_indexes  text[] NOT NULL DEFAULT '{}',
    prepared_at    timestamptz NOT NULL DEFAULT now(),
    converted_at   timestamptz
);
COMMENT ON TABLE keel.partitioning IS 'Tables converted (or being converted) to range partitions on their key; see keel.partition_prepare.';
COMMENT ON COLUMN keel.partitioning.table_name IS 'jobs or outbox.';
COMMENT ON COLUMN keel.partitioning.partition_rows IS 'Keys per partition.';
COMMENT ON COLUMN keel.partitioning.history_bound IS 'Upper bound (exclusive) of <table>_history, the table as it was before the conversion; new keys start here.';
COMMENT ON COLUMN keel.partitioning.next_lower IS 'Lower bound of the next partition to create.';
COMMENT ON COLUMN keel.partitioning.reloptions IS 'Storage parameters every new partition gets (those the table had).';
COMMENT ON COLUMN keel.partitioning.local_indexes IS 'Unique indexes that cannot span partitions, created on each partition (%s is the partition).';
COMMENT ON COLUMN keel.partitioning.prepared_at IS 'When keel.partition_prepare ran.';
COMMENT ON COLUMN keel.partitioning.converted_at IS 'When keel.partition_convert ran; NULL while only prepared.';

CREATE TABLE keel.job_unique_keys (
    unique_key text PRIMARY KEY,
    job_id     bigint NOT NULL
);
COMMENT ON TABLE keel.job_unique_keys IS 'The unique keys held by non-final jobs, once keel.jobs is partitioned (a unique index cannot span partitions). Triggers on keel.jobs keep it; empty while keel.jobs is a plain table.';
COMMENT ON COLUMN keel.job_unique_keys.unique_key IS 'A unique key held by a job that is not final.';
COMMENT ON COLUMN keel.job_unique_keys.job_id IS 'The job that holds it.';

-- +goose StatementBegin
CREATE FUNCTION keel.partition_key(p_table text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE p_table WHEN 'jobs' THEN 'id' WHEN 'outbox' THEN 'seq' END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.partition_key(text) IS 'The column keel partitions a table on: jobs.id, outbox.seq.';

-- +goose StatementBegin
CREATE FUNCTION keel.partition_prepare(p_table text, p_rows bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '500ms' AS $$
DECLARE
    col   text := keel.partition_key(p_table);
    seq   text;
    last  bigint;
    bound bigint;
BEGIN
    IF col IS NULL THEN
        RAISE EXCEPTION 'keel: only jobs and outbox can be partitioned, not %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_rows IS NULL OR p_rows < 1000 THEN
        RAISE EXCEPTION 'keel: partition rows must be at least 1000, got %', p_rows USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM keel.partitioning WHERE table_name = p_table AND converted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'keel: keel.% is already partitioned', p_table USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT history_bound INTO bound FROM keel.partitioning WHERE table_name = p_table;
    IF FOUND THEN
        UPDATE keel.partitioning SET partition_rows = p_rows WHERE table_name = p_table;
        RETURN bound;
    END IF;
    seq := pg_get_serial_sequence(format('keel.%I', p_table), col);
    EXECUTE format('SELECT last_value FROM %s', seq) INTO last;
    -- Keys keep being handed out until the conversion: leave 2^32 of them
    -- below the bound, so no insert can reach it in the meantime.
    bound := ((last + 4294967296) / p_rows + 1) * p_rows;
    EXECUTE format('ALTER TABLE keel.%I ADD CONSTRAINT %I CHECK (%I < %s) NOT VALID',
        p_table, p_table || '_history_bound', col, bound);
    INSERT INTO keel.partitioning (table_name, partition_rows, history_bound, next_lower)
    VALUES (p_table, p_rows, bound, bound);
    RETURN bound;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.partition_prepare(text, bigint) IS 'Step 1 of 3 of partitioning keel.jobs or keel.outbox: fixes the bound of the history partition with a NOT VALID check (a brief ACCESS EXCLUSIVE lock). Returns the bound.';

-- +goose StatementBegin
CREATE FUNCTION keel.partition_validate(p_table text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    con text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM keel.partitioning WHERE table_name = p_table AND converted_at IS NULL) THEN
        RAISE EXCEPTION 'keel: keel.% is not prepared for partitioning', p_table USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Every check the table holds unvalidated is validated too: a
    -- partition must prove each of its parent's checks.
    FOR con IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = format('keel.%I', p_table)::regclass AND contype = 'c' AND NOT convalidated
    LOOP
        EXECUTE format('ALTER TABLE keel.%I VALIDATE CONSTRAINT %I', p_table, con);
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.partition_validate(text) IS 'Step 2 of 3: scans the table once to validate its checks, under a SHARE UPDATE EXCLUSIVE lock that lets every read and write go on.';

-- +goose StatementBegin
CREATE FUNCTION keel.partition_convert(p_table text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '500ms' AS $$
DECLARE
    rel      regclass := format('keel.%I', p_table)::regclass;
    col      text := keel.partition_key(p_table);
    hist     text := p_table || '_history';
    cfg      keel.partitioning;
    opts     text[];
    r        record;
    idx      record;
    parent   text[] := '{}';
    local    text[] := '{}';
    comments text[] := '{}';
    views    text[] := '{}';
    acl      text[] := '{}';
    s        text;
BEGIN
    SELECT * INTO cfg FROM keel.partitioning WHERE table_name = p_table FOR UPDATE;
    IF NOT FOUND OR cfg.converted_at IS NOT NULL THEN
        RAISE EXCEPTION 'keel: keel.% is not prepared for partitioning, or already partitioned', p_table
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = rel AND contype = 'c' AND NOT convalidated) THEN
        RAISE EXCEPTION 'keel: keel.% has checks not yet validated (run keel.partition_validate)', p_table
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('LOCK TABLE keel.%I IN ACCESS EXCLUSIVE MODE', p_table);

    SELECT reloptions INTO opts FROM pg_class WHERE oid = rel;
    -- The indexes: the primary key and the unique ones cannot span
    -- partitions unless they contain the key; the others move to the parent
    -- and the history partition's own copies are attached to them.
    FOR idx IN
        SELECT i.indexrelid::regclass::text AS name, c.relname, pg_get_indexdef(i.indexrelid) AS def,
               i.indisunique, i.indisprimary, obj_description(i.indexrelid, 'pg_class') AS comment,
               con.conname
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = rel
        WHERE i.indrelid = rel
    LOOP
        IF idx.indisprimary THEN
            NULL;
        ELSIF idx.indisunique THEN
            local := local || regexp_replace(idx.def, ' INDEX \S+ ON \S+ ', ' INDEX ON %s ');
        ELSE
            parent := parent || idx.def;
            IF idx.comment IS NOT NULL THEN
                comments := comments || format('COMMENT ON INDEX keel.%I IS %L', idx.relname, idx.comment);
            END IF;
        END IF;
        -- The history partition's indexes give their names to the parent's:
        -- jobs_claim_idx becomes jobs_history_claim_idx.
        s := CASE WHEN starts_with(idx.relname, p_table || '_') THEN hist || substr(idx.relname, length(p_table) + 1)
                  ELSE hist || '_' || idx.relname END;
        IF idx.conname IS NOT NULL THEN
            EXECUTE format('ALTER TABLE keel.%I RENAME CONSTRAINT %I TO %I', p_table, idx.conname, s);
        ELSE
            EXECUTE format('ALTER INDEX %s RENAME TO %I', idx.name, s);
        END IF;
    END LOOP;
    FOR r IN
        SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS def
        FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class
        WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = rel AND v.oid <> rel
    LOOP
        views := views || format('CREATE OR REPLACE VIEW %s AS %s', r.name, r.def);
    END LOOP;
    FOR r IN
        SELECT a.privilege_type, a.grantee
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = rel AND a.grantee <> c.relowner
    LOOP
        acl := acl || format('GRANT %s ON keel.%I TO %s', r.privilege_type, p_table,
            CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.grantee::regrole::text) END);
    END LOOP;

    EXECUTE format('ALTER TABLE keel.%I RENAME TO %I', p_table, hist);
    EXECUTE format('CREATE TABLE keel.%I (LIKE keel.%I INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (%I)',
        p_table, hist, col);
    EXECUTE format('ALTER TABLE keel.%I DROP CONSTRAINT %I', p_table, p_table || '_history_bound');
    EXECUTE format('COMMENT ON TABLE keel.%I IS %L', p_table, obj_description(rel, 'pg_class'));
    EXECUTE format('ALTER TABLE keel.%I ADD CONSTRAINT %I PRIMARY KEY (%I)', p_table, p_table || '_pkey', col);
    FOREACH s IN ARRAY parent || comments LOOP
        EXECUTE s;
    END LOOP;
    EXECUTE format('ALTER TABLE keel.%I ATTACH PARTITION keel.%I FOR VALUES FROM (MINVALUE) TO (%s)', p_table, hist, cfg.history_bound);
    EXECUTE format('ALTER TABLE keel.%I DROP CONSTRAINT %I', hist, p_table || '_history_bound');
    FOREACH s IN ARRAY views || acl LOOP
        EXECUTE s;
    END LOOP;

    IF p_table = 'jobs' THEN
        -- bigserial: the sequence moves to the new table, so it outlives the
        -- history partition, and continues above the bound.
        ALTER SEQUENCE keel.jobs_id_seq OWNED BY keel.jobs.id;
        INSERT INTO keel.job_unique_keys (unique_key, job_id)
        SELECT unique_key, id FROM keel.jobs_history
        WHERE unique_key IS NOT NULL AND state NOT IN ('completed', 'cancelled', 'discarded');
        CREATE TRIGGER jobs_unique_key_insert BEFORE INSERT ON keel.jobs FOR EACH ROW
            WHEN (NEW.unique_key IS NOT NULL AND NEW.state NOT IN ('completed', 'cancelled', 'discarded'))
            EXECUTE FUNCTION keel.jobs_unique_key_take();
        CREATE TRIGGER jobs_unique_key_reopen BEFORE UPDATE OF state ON keel.jobs FOR EACH ROW
            WHEN (NEW.unique_key IS NOT NULL AND OLD.state IN ('completed', 'cancelled', 'discarded')
                  AND NEW.state NOT IN ('completed', 'cancelled', 'discarded'))
            EXECUTE FUNCTION keel.jobs_unique_key_take();
        CREATE TRIGGER jobs_unique_key_finish AFTER UPDATE OF state ON keel.jobs FOR EACH ROW
            WHEN (OLD.unique_key IS NOT NULL AND OLD.state NOT IN ('completed', 'cancelled', 'discarded')
                  AND NEW.state IN ('completed', 'cancelled', 'discarded'))
            EXECUTE FUNCTION keel.jobs_unique_key_release();
        CREATE TRIGGER jobs_unique_key_delete AFTER DELETE ON keel.jobs FOR EACH ROW
            WHEN (OLD.unique_key IS NOT NULL AND OLD.state NOT IN ('completed', 'cancelled', 'discarded'))
            EXECUTE FUNCTION keel.jobs_unique_key_release();
    END IF;
    PERFORM setval(pg_get_serial_sequence(format('keel.%I', p_table), col), cfg.history_bound, false);

    UPDATE keel.partitioning SET reloptions = opts, local_indexes = local, converted_at = now()
    WHERE table_name = p_table;
    PERFORM keel.partition_create(p_table, p_table || '_default', 'DEFAULT');
    PERFORM keel.partition_extend(p_table);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.partition_convert(text) IS 'Step 3 of 3: makes the table the history partition of a new partitioned table of the same name and creates the partitions ahead. Holds an ACCESS EXCLUSIVE lock for a moment; scans nothing.';

-- +goose StatementBegin
CREATE FUNCTION keel.jobs_unique_key_take() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO keel.job_unique_keys (unique_key, job_id) VALUES (NEW.unique_key, NEW.id)
    ON CONFLICT (unique_key) DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- The key is held: the insert does nothing, as ON CONFLICT DO
        -- NOTHING does on the plain table's unique index.
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'duplicate key value violates unique constraint "jobs_unique_key_idx"'
        USING ERRCODE = 'unique_violation', SCHEMA = 'keel', TABLE = 'jobs', CONSTRAINT = 'jobs_unique_key_idx',
              DETAIL = format('Key (unique_key)=(%s) already exists.', NEW.unique_key);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.jobs_unique_key_take() IS 'Partitioned keel.jobs: a job that becomes non-final takes its unique key in keel.job_unique_keys, or is not inserted (or its update fails) when another job holds it.';

-- +goose StatementBegin
CREATE FUNCTION keel.jobs_unique_key_release() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM keel.job_unique_keys WHERE unique_key = OLD.unique_key AND job_id = OLD.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.jobs_unique_key_release() IS 'Partitioned keel.jobs: a job that becomes final or is deleted gives its unique key back.';

-- +goose StatementBegin
CREATE FUNCTION keel.partition_create(p_table text, p_name text, p_bound text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cfg keel.partitioning;
    s   text;
BEGIN
    SELECT * INTO STRICT cfg FROM keel.partitioning WHERE table_name = p_table;
    EXECUTE format('CREATE TABLE keel.%I PARTITION OF keel.%I %s%s', p_name, p_table, p_bound,
        CASE WHEN cfg.reloptions IS NULL THEN '' ELSE ' WITH (' || array_to_string(cfg.reloptions, ', ') || ')' END);
    FOREACH s IN ARRAY cfg.local_indexes LOOP
        EXECUTE replace(s, '%s', format('keel.%I', p_name));
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.partition_create(text, text, text) IS 'Creates one partition with the table''s storage parameters and its partition-local unique indexes.';

-- +goose StatementBegin
CREATE FUNCTION keel.partition_extend(p_table text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '200ms' AS $$
DECLARE
    cfg      keel.partitioning;
    last     bigint;
    overflow bigint;
    made     integer := 0;
BEGIN
    SELECT * INTO cfg FROM keel.partitioning WHERE table_name = p_table AND converted_at IS NOT NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT last_value FROM %s', pg_get_serial_sequence(format('keel.%I', p_table), keel.partition_key(p_table))) INTO last;
    -- Keys that outran the partitions (a burst larger than two partitions
    -- between two passes) went to the default partition; the next
    -- partition starts above them, as a range may not take rows the default
    -- partition holds.
    EXECUTE format('SELECT max(%I) FROM keel.%I', keel.partition_key(p_table), p_table || '_default') INTO overflow;
    IF overflow >= cfg.next_lower THEN
        cfg.next_lower := cfg.history_bound + ((overflow - cfg.history_bound) / cfg.partition_rows + 1) * cfg.partition_rows;
    END IF;
    -- Keep two whole partitions ahead of the last key handed out.
    WHILE cfg.next_lower <= last + 2 * cfg.partition_rows LOOP
        PERFORM keel.partition_create(p_table, format('%s_%s', p_table, cfg.next_lower),
            format('FOR VALUES FROM (%s) TO (%s)', cfg.next_lower, cfg.next_lower + cfg.partition_rows));
        cfg.next_lower := cfg.next_lower + cfg.partition_rows;
        made := made + 1;
    END LOOP;
    UPDATE keel.partitioning SET next_lower = cfg.next_lower WHERE table_name = p_table;
    RETURN made;
EXCEPTION WHEN lock_not_available THEN
    -- Workers kept the table busy for 200 ms: try on the next pass.
    RETURN 0;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.partition_extend(text) IS 'Creates partitions of a partitioned keel.jobs or keel.outbox until two whole ones lie ahead of its sequence; returns how many it created (0 for a plain table).';

-- +goose StatementBegin
CREATE FUNCTION keel.partition_droppable(p_table text, part regclass, p_before timestamptz[]) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    busy boolean;
BEGIN
    -- Each test is answered by one of the table's partial indexes.
    IF p_table = 'jobs' THEN
        EXECUTE format($q$SELECT
            EXISTS (SELECT 1 FROM %1$s WHERE state = 'available')
            OR EXISTS (SELECT 1 FROM %1$s WHERE state IN ('scheduled', 'retryable'))
            OR EXISTS (SELECT 1 FROM %1$s WHERE heartbeat_at IS NOT NULL)
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'pending')
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'completed' AND finalized_at >= COALESCE($1[1], 'infinity'))
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'cancelled' AND finalized_at >= COALESCE($1[2], 'infinity'))
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'discarded' AND finalized_at >= COALESCE($1[3], 'infinity'))
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'completed' AND $1[1] IS NULL)
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'cancelled' AND $1[2] IS NULL)
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'discarded' AND $1[3] IS NULL)$q$, part)
        INTO busy USING p_before;
    ELSE
        EXECUTE format($q$SELECT
            EXISTS (SELECT 1 FROM %1$s WHERE state = 'pending')
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'dead')
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'delivered' AND delivered_at >= COALESCE($1[1], 'infinity'))
            OR EXISTS (SELECT 1 FROM %1$s WHERE state = 'delivered' AND $1[1] IS NULL)$q$, part)
        INTO busy USING p_before;
    END IF;
    RETURN NOT busy;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.partition_droppable(text, regclass, timestamptz[]) IS 'Whether every row of a partition is final and past its retention (p_before: per final state, the time before which it expires; NULL keeps that state for ever).';

-- +goose StatementBegin
CREATE FUNCTION keel.partition_drop_expired(p_table text, p_before timestamptz[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '200ms' AS $$
DECLARE
    last    bigint;
    part    regclass;
    parts   regclass[] := '{}';
    dflt    regclass := format('keel.%I', p_table || '_default')::regclass;
    used    boolean;
    dropped integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM keel.partitioning WHERE table_name = p_table AND converted_at IS NOT NULL) THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT last_value FROM %s', pg_get_serial_sequence(format('keel.%I', p_table), keel.partition_key(p_table))) INTO last;
    -- Candidates: partitions whose every key has been handed out, and the
    -- default partition when a burst left rows in it, found without a lock,
    -- so a pass that drops nothing takes none.
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', dflt) INTO used;
    FOR part IN
        SELECT i.inhrelid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = format('keel.%I', p_table)::regclass
          AND (substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''(-?[0-9]+)''\)')::bigint <= last + 1
               OR (c.oid = dflt AND used))
        ORDER BY c.oid
    LOOP
        IF keel.partition_droppable(p_table, part, p_before) THEN
            parts := parts || part;
        END IF;
    END LOOP;
    IF cardinality(parts) = 0 THEN
        RETURN 0;
    END IF;
    BEGIN
        EXECUTE format('LOCK TABLE keel.%I IN ACCESS EXCLUSIVE MODE', p_table);
        -- Under the lock nothing changes: test again, then drop (the
        -- default partition is emptied instead: it must stay).
        FOREACH part IN ARRAY parts LOOP
            IF keel.partition_droppable(p_table, part, p_before) THEN
                EXECUTE format(CASE WHEN part = dflt THEN 'TRUNCATE %s' ELSE 'DROP TABLE %s' END, part);
                dropped := dropped + 1;
            END IF;
        END LOOP;
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    RETURN dropped;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION keel.partition_drop_expired(text, timestamptz[]) IS 'Retention of a partitioned keel.jobs or keel.outbox: drops every partition whose rows are all final and expired. p_before: for jobs the cutoffs of completed, cancelled and discarded; for the outbox that of delivered. Gives up for this pass (returns 0) when the table stays locked for 200 ms.';

REVOKE ALL ON FUNCTION keel.partition_prepare(text, bigint), keel.partition_validate(text), keel.partition_convert(text),
    keel.partition_create(text, text, text), keel.partition_extend(text), keel.partition_droppable(text, regclass, timestamptz[]),
    keel.partition_drop_expired(text, timestamptz[]) FROM PUBLIC;

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM keel.partitioning WHERE converted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'keel: a partitioned table cannot be migrated down: keel.partitioning lists it';
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE keel.jobs DROP CONSTRAINT IF EXISTS jobs_history_bound;
ALTER TABLE keel.outbox DROP CONSTRAINT IF EXISTS outbox_history_bound;
DROP FUNCTION keel.partition_drop_expired(text, timestamptz[]);
DROP FUNCTION keel.partition_droppable(text, regclass, timestamptz[]);
DROP FUNCTION keel.partition_extend(text);
DROP FUNCTION keel.partition_create(text, text, text);
DROP FUNCTION keel.jobs_unique_key_release();
DROP FUNCTION keel.jobs_unique_key_take();
DROP FUNCTION keel.partition_convert(text);
DROP FUNCTION keel.partition_validate(text);
DROP FUNCTION keel.partition_prepare(text, bigint);
DROP FUNCTION keel.partition_key(text);
DROP TABLE keel.job_unique_keys;
DROP TABLE keel.partitioning;
