package migrations

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// PartitionTable names a table keel can partition.
type PartitionTable string

// The tables keel can partition.
const (
	PartitionJobs   PartitionTable = "jobs"   // keel.jobs, on id
	PartitionOutbox PartitionTable = "outbox" // keel.outbox, on seq
)

// DefaultPartitionRows is PartitionConfig.Rows when it is zero.
const DefaultPartitionRows = 10_000_000

// PartitionConfig configures Partition.
type PartitionConfig struct {
	// Rows is how many keys (job ids, outbox seqs) each partition covers.
	// Every statement that cannot name its partition reads one index per
	// partition, so choose it to keep tens of partitions, not hundreds: about
	// a tenth of what the table takes in over its retention. At least 1,000.
	// Default: DefaultPartitionRows.
	Rows int64
}

// ErrInvalidPartition is returned by Partition for a table keel does not
// partition or a partition size below 1,000, before anything is sent.
var ErrInvalidPartition = errors.New("keel migrations: invalid partitioning")

// Partition converts keel.jobs or keel.outbox, with the rows it holds, into
// a table partitioned by range on its key, whose retention drops whole
// partitions instead of deleting rows. Migration 00011 explains the
// trade-offs; the jobs client and the relay take the new layout up on their
// next retention pass and create partitions ahead from then on.
//
// It runs three transactions. The first fixes the bound of the history
// partition (the table as it is) with a NOT VALID check, and the last makes
// the table that partition of a new partitioned table: each holds an ACCESS
// EXCLUSIVE lock on the table for a moment, waits at most 500 ms for it, and
// is tried again a second later while the table stays busy (20 tries). The
// middle one scans the table once to validate its checks while reads and
// writes go on.
// A run that failed half way is resumed by calling Partition again.
func Partition(ctx context.Context, pool *pgxpool.Pool, table PartitionTable, cfg PartitionConfig) error {
	if table != PartitionJobs && table != PartitionOutbox {
		return fmt.Errorf("%w: keel partitions jobs or outbox, not %q", ErrInvalidPartition, table)
	}
	if cfg.Rows == 0 {
		cfg.Rows = DefaultPartitionRows
	}
	if cfg.Rows < 1000 {
		return fmt.Errorf("%w: a partition must cover at least 1000 rows, not %d", ErrInvalidPartition, cfg.Rows)
	}
	name := string(table)
	done, err := db.New(pool).TablePartitioned(ctx, name)
	if err != nil {
		return wrap("partition", err)
	}
	if done {
		return nil
	}
	steps := []func(q *db.Queries) error{
		func(q *db.Queries) error {
			_, err := q.PartitionPrepare(ctx, db.PartitionPrepareParams{TableName: name, PartitionRows: cfg.Rows})
			return err
		},
		func(q *db.Queries) error { return q.PartitionValidate(ctx, name) },
		func(q *db.Queries) error { return q.PartitionConvert(ctx, name) },
	}
	for _, step := range steps {
		if err := retryLocked(ctx, func() error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return step(db.New(tx)) })
		}); err != nil {
			return wrap("partition keel."+name, err)
		}
	}
	return nil
}

// partitionLockTries is how often Partition tries a step whose lock it could
// not get within the step's lock_timeout.
const partitionLockTries = 20

// lockNotAvailable is Postgres's SQLSTATE for a lock_timeout that expired.
const lockNotAvailable = "55P03"

// retryLocked runs fn again, a second apart, while it fails for a lock it
// waited too long for (55P03): the table was busy.
func retryLocked(ctx context.Context, fn func() error) error {
	var err error
	for range partitionLockTries {
		err = fn()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != lockNotAvailable {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return err
}

// PartitionInfo describes one partition of keel.jobs or keel.outbox.
type PartitionInfo struct {
	Table         PartitionTable `json:"table"`
	Name          string         `json:"name"`           // e.g. jobs_history, jobs_4294969000
	Bound         string         `json:"bound"`          // the keys it covers, as Postgres prints them
	EstimatedRows int64          `json:"estimated_rows"` // from the statistics; -1 if never analysed
	TotalBytes    int64          `json:"total_bytes"`    // heap, indexes and TOAST
}

// Partitions lists the partitions of keel.jobs and keel.outbox, oldest first;
// none while neither is partitioned.
func Partitions(ctx context.Context, tx keeltype.DBTX) ([]PartitionInfo, error) {
	rows, err := db.New(tx).ListPartitions(ctx)
	if err != nil {
		return nil, wrap("partitions", err)
	}
	out := make([]PartitionInfo, len(rows))
	for i, r := range rows {
		out[i] = PartitionInfo{
			Table: PartitionTable(r.TableName), Name: r.PartitionName, Bound: r.Bound,
			EstimatedRows: r.EstimatedRows, TotalBytes: r.TotalBytes,
		}
	}
	return out, nil
}
