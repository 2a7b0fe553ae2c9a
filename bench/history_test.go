package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The history benchmarks run a throughput workload twice, each time in a
// fresh database: empty, and after the rows a day of traffic leaves behind in
// the states retention keeps (completed jobs, delivered messages, events of
// other categories, finished saga runs). The history is written with
// set-based statements straight into the tables, then VACUUM ANALYZE runs, as
// autovacuum would have by the time the workload starts. The history case
// is named like the empty one with /history=<size> after it, which is how
// benchreport pairs them.
//
// Its timestamps are spread evenly over the 23 hours before now, so
// retention (24 hours by default) deletes none of it while the workload
// runs.

// historyEnv lists the history sizes to run, comma-separated (rows of the
// workload's main table; finished runs for sagas). Default: 2000000; 0 runs
// none.
const historyEnv = "KEEL_BENCH_HISTORY"

// historySizes reads historyEnv.
func historySizes(b *testing.B) []int {
	b.Helper()
	v := os.Getenv(historyEnv)
	if v == "" {
		return []int{2_000_000}
	}
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			b.Fatalf("%s=%q: want a comma-separated list of row counts", historyEnv, v)
		}
		if n > 0 {
			sizes = append(sizes, n)
		}
	}
	return sizes
}

// historyName is the case suffix of a history size: history=2M, history=500k.
func historyName(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("history=%dM", n/1_000_000)
	case n%1_000 == 0:
		return fmt.Sprintf("history=%dk", n/1_000)
	default:
		return fmt.Sprintf("history=%d", n)
	}
}

// historySpan is the time the history is spread over, ending now: row i of n
// is at now() - span + span * i / n.
const historySpan = "interval '23 hours'"

// The statements that write history. $1 is always the number of rows; rows
// are numbered 1 … $1 and row i is written at t. Ids that keel makes
// UUIDv7 are built the same way from t, so they ascend with time as keel's do.
const (
	historyRows = "SELECT i, now() - " + historySpan + " + " + historySpan + " * i / $1::int AS t FROM generate_series(1, $1::int) AS i"
	historyUUID = "(lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '70008000' || lpad(to_hex(i), 12, '0'))::uuid"

	// Completed no-op jobs of the default queue, as the jobs workload leaves them.
	insertJobsHistory = `INSERT INTO keel.jobs (kind, queue, state, args, attempt, run_at, created_at, attempted_at, finalized_at, progress)
SELECT 'noop', 'default', 'completed', jsonb_build_object('n', i), 1, t, t, t, t + interval '1 millisecond', 100
FROM (` + historyRows + `) h`
	lastJobID = "SELECT COALESCE(max(id), 0) FROM keel.jobs"

	// River's completed jobs, as River's completer leaves them.
	insertRiverHistory = `INSERT INTO river_job (kind, queue, state, args, attempt, attempted_at, attempted_by, created_at, scheduled_at, finalized_at, max_attempts, priority, metadata, tags)
SELECT 'noop', 'default', 'completed', jsonb_build_object('n', i), 1, t, ARRAY['history'], t, t, t + interval '1 millisecond', 25, 1, '{}', '{}'
FROM (` + historyRows + `) h`
	lastRiverJobID = "SELECT COALESCE(max(id), 0) FROM river_job"

	// Delivered messages with the workload's payload; $2 is the number of
	// keys, as the workload's (0: no key), $3 the payload.
	insertOutboxHistory = `INSERT INTO keel.outbox (id, topic, key, type, payload, state, attempts, available_at, locked_by, created_at, delivered_at)
SELECT ` + historyUUID + `, 'orders', CASE WHEN $2::int > 0 THEN 'order-' || (i % $2::int) END, 'OrderPlaced', $3::bytea,
       'delivered', 1, t, 'history', t, t + interval '5 milliseconds'
FROM (` + historyRows + `) h`

	// Events of single-event appends to $2 streams of ten categories
	// (history0 … history9, none the workload's), round robin, so event i
	// is version (i-1)/$2+1 of stream (i-1)%$2 and holds feed position i:
	// keel.streams, keel.events and keel.feed agree, and positions are dense
	// from 1. $3 is the events' payload.
	historyStream   = "'history' || (s % 10) || '-' || s"
	historyCategory = "'history' || (s % 10)"
	historyEvents   = "SELECT i, (i - 1) % $2::int AS s, (i - 1) / $2::int + 1 AS version, t FROM (" + historyRows + ") r"

	insertStreamsHistory = `INSERT INTO keel.streams (stream_id, version, created_at, updated_at)
SELECT ` + historyStream + `, ($1::int - 1 - s) / $2::int + 1, now() - ` + historySpan + `, now()
FROM generate_series(0, $2::int - 1) AS s`
	insertEventsHistory = `INSERT INTO keel.events (stream_id, version, event_id, type, data, recorded_at)
SELECT ` + historyStream + `, version, ` + historyUUID + `, 'ItemAdded', $3::jsonb, t
FROM (` + historyEvents + `) h`
	insertFeedHistory = `INSERT INTO keel.feed (last_position, stream_id, first_version, event_count, category)
SELECT i, ` + historyStream + `, version, 1, ` + historyCategory + `
FROM (` + historyEvents + `) h`

	// Succeeded runs of the benchmark's three-step workflow: the run, its
	// three completed steps, and the completed job that executed it. Run
	// ids are random UUIDs in keel; these are shaped like them and depend on
	// i alone, so every statement names the same runs.
	historyRunID      = "'00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0')"
	insertRunsHistory = `INSERT INTO keel.saga_runs (id, workflow, version, status, queue, input, output, epoch, generation, resumes, created_at, started_at, updated_at, finished_at)
SELECT ` + historyRunID + `, 'steps', 1, 'succeeded', 'saga', '3', '3', 0, 1, 1, t, t, t + interval '3 milliseconds', t + interval '3 milliseconds'
FROM (` + historyRows + `) h`
	insertStepsHistory = `INSERT INTO keel.saga_steps (run_id, seq, name, kind, status, output, attempts, started_at, finished_at)
SELECT ` + historyRunID + `, k, 's' || (k - 1), 'step', 'completed', '1', 1, t + k * interval '1 millisecond', t + k * interval '1 millisecond'
FROM (` + historyRows + `) h, generate_series(1, 3) AS k`
	insertRunJobsHistory = `INSERT INTO keel.jobs (kind, queue, state, args, attempt, max_attempts, run_at, created_at, attempted_at, finalized_at, progress)
SELECT 'keel.saga.run', 'saga', 'completed', jsonb_build_object('run_id', ` + historyRunID + `, 'generation', 1), 1, 1048576, t, t, t, t + interval '3 milliseconds', 100
FROM (` + historyRows + `) h`
)

// historyStep is one statement of a history, with its arguments.
type historyStep struct {
	sql  string
	args []any
}

// writeHistory runs each group of steps after the one before, the steps of
// a group at once on connections of their own (tables that do not refer to
// each other load side by side), then VACUUM ANALYZEs the tables and
// CHECKPOINTs: a day-old history was vacuumed and written out long ago, so
// the workload must not pay for flushing the freshly loaded pages.
func writeHistory(b *testing.B, pool *pgxpool.Pool, tables string, groups ...[]historyStep) {
	b.Helper()
	ctx := context.Background()
	for _, g := range groups {
		var wg sync.WaitGroup
		errs := make(chan error, len(g))
		for _, s := range g {
			wg.Go(func() {
				if _, err := pool.Exec(ctx, s.sql, s.args...); err != nil {
					errs <- fmt.Errorf("writing history: %w", err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE "+tables); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Fatal(err)
	}
}

// lastID runs a statement that returns the highest id of a table.
func lastID(b *testing.B, pool *pgxpool.Pool, stmt string) int64 {
	b.Helper()
	var id int64
	if err := pool.QueryRow(context.Background(), stmt).Scan(&id); err != nil {
		b.Fatal(err)
	}
	return id
}

func jobsHistory(b *testing.B, pool *pgxpool.Pool, n int) (lastJob int64) {
	b.Helper()
	writeHistory(b, pool, "keel.jobs", []historyStep{{insertJobsHistory, []any{n}}})
	return lastID(b, pool, lastJobID)
}

func riverHistory(b *testing.B, pool *pgxpool.Pool, n int) (lastJob int64) {
	b.Helper()
	writeHistory(b, pool, "river_job", []historyStep{{insertRiverHistory, []any{n}}})
	return lastID(b, pool, lastRiverJobID)
}

// outboxHistory writes n delivered messages over keys keys (0: unkeyed).
func outboxHistory(b *testing.B, pool *pgxpool.Pool, n, keys int) {
	b.Helper()
	writeHistory(b, pool, "keel.outbox", []historyStep{{insertOutboxHistory, []any{n, keys, payload}}})
}

// eventsHistory writes n events in streams of ten events each.
func eventsHistory(b *testing.B, pool *pgxpool.Pool, n int) {
	b.Helper()
	streams := max(1, n/10)
	data := string(eventPayload)
	writeHistory(b, pool, "keel.streams, keel.events, keel.feed", []historyStep{
		{insertStreamsHistory, []any{n, streams}},
		{insertEventsHistory, []any{n, streams, data}},
		{insertFeedHistory, []any{n, streams}},
	})
}

// sagaHistory writes n finished runs.
func sagaHistory(b *testing.B, pool *pgxpool.Pool, n int) {
	b.Helper()
	writeHistory(b, pool, "keel.saga_runs, keel.saga_steps, keel.jobs",
		[]historyStep{{insertRunsHistory, []any{n}}},
		[]historyStep{{insertStepsHistory, []any{n}}, {insertRunJobsHistory, []any{n}}},
	)
}
