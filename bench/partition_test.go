package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

// partitionsPerHistory is how many partitions the partitioned retention
// benchmarks spread their history over: a partition per 70 minutes of the
// 23 hours, so the table keeps tens of partitions, as migration 00011
// advises.
const partitionsPerHistory = 20

// The history statements of history_test.go, writing rows $from … $to of
// the n rows only (jobs: $2, $3; outbox: $4, $5), so that a partitioned
// table can be extended between the parts.
var (
	insertJobsHistoryPart   = strings.Replace(insertJobsHistory, "generate_series(1, $1::int)", "generate_series($2::int, $3::int)", 1)
	insertOutboxHistoryPart = strings.Replace(insertOutboxHistory, "generate_series(1, $1::int)", "generate_series($4::int, $5::int)", 1)
)

// What the partitioned retention benchmarks wait for: no row left below
// $1, the first key of the partition that holds the first row retention
// keeps. A partition goes only once all its rows expired, so the expired
// rows beside that row stay until it expires too.
const (
	jobsFirstKept = `SELECT p.history_bound + (min(j.id) - p.history_bound) / p.partition_rows * p.partition_rows
FROM keel.jobs j, keel.partitioning p
WHERE p.table_name = 'jobs' AND j.state = 'completed' AND j.finalized_at >= $1
GROUP BY p.history_bound, p.partition_rows`
	outboxFirstKept = `SELECT p.history_bound + (min(o.seq) - p.history_bound) / p.partition_rows * p.partition_rows
FROM keel.outbox o, keel.partitioning p
WHERE p.table_name = 'outbox' AND o.state = 'delivered' AND o.delivered_at >= $1
GROUP BY p.history_bound, p.partition_rows`
	jobsBelowLeft    = "SELECT EXISTS (SELECT 1 FROM keel.jobs WHERE id < $1)"
	jobsBelowCount   = "SELECT count(*) FROM keel.jobs WHERE id < $1"
	outboxBelowLeft  = "SELECT EXISTS (SELECT 1 FROM keel.outbox WHERE seq < $1)"
	outboxBelowCount = "SELECT count(*) FROM keel.outbox WHERE seq < $1"
)

// partitionedHistory converts table to partitions of n/partitionsPerHistory
// keys while it is empty, then writes its history in parts of one
// partition each, creating the partitions ahead after each part as the
// retention duty would have.
func partitionedHistory(b *testing.B, pool *pgxpool.Pool, table migrations.PartitionTable, n int, part func(from, to int) historyStep) {
	b.Helper()
	rows := n / partitionsPerHistory
	if err := migrations.Partition(context.Background(), pool, table, migrations.PartitionConfig{Rows: int64(rows)}); err != nil {
		b.Fatal(err)
	}
	extend := historyStep{"SELECT keel.partition_extend($1)", []any{string(table)}}
	var groups [][]historyStep
	for from := 1; from <= n; from += rows {
		groups = append(groups, []historyStep{part(from, min(from+rows-1, n))}, []historyStep{extend})
	}
	writeHistory(b, pool, "keel."+string(table), groups...)
}

// firstKept runs a *FirstKept statement.
func firstKept(b *testing.B, pool *pgxpool.Pool, stmt string, cutoff time.Time) int64 {
	b.Helper()
	var key int64
	if err := pool.QueryRow(context.Background(), stmt, cutoff).Scan(&key); err != nil {
		b.Fatal(err)
	}
	return key
}
