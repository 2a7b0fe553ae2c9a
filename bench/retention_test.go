package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/migrations"
	"github.com/keelpg/keel/outbox"
)

// retentionPeriod is the retention the retention benchmarks configure: of a
// history spread over the last 23 hours, all but the last hour is past it.
const retentionPeriod = time.Hour

// What the retention benchmarks wait for: no history row past retention.
// $1 is the cutoff; each finds its rows through retention's own index.
const (
	jobsExpiredLeft    = "SELECT EXISTS (SELECT 1 FROM keel.jobs WHERE state = 'completed' AND finalized_at < $1)"
	jobsExpiredCount   = "SELECT count(*) FROM keel.jobs WHERE state = 'completed' AND finalized_at < $1"
	outboxExpiredLeft  = "SELECT EXISTS (SELECT 1 FROM keel.outbox WHERE state = 'delivered' AND delivered_at < $1)"
	outboxExpiredCount = "SELECT count(*) FROM keel.outbox WHERE state = 'delivered' AND delivered_at < $1"
)

// BenchmarkRetention: a day of history of which all but the last hour is
// past retention, deleted by keel's own retention (the jobs client's, the
// relay's) while the usual workload runs beside it — 50,000 no-op jobs
// worked with defaults, 50,000 unkeyed messages relayed. It reports how
// fast retention deletes (deleted/s: a service that inserts 30,000 jobs/s
// needs at least that) and how fast the workload went meanwhile, to set
// against the same workload with the history retention keeps
// (BenchmarkJobsWork/keel/defaults/history=…, BenchmarkOutboxRelay/keel/
// relays=1/history=…): retention must not take locks or time the workers
// need. The partitioned cases do the same on tables partitioned before the
// history was written (partition_test.go), where retention drops whole
// partitions; deleted/s there counts the rows of the dropped partitions.
func BenchmarkRetention(b *testing.B) {
	for _, n := range historySizes(b) {
		expired := "expired=" + historyName(n)[len("history="):]
		for _, partitioned := range []bool{false, true} {
			layout := ""
			if partitioned {
				layout = "partitioned/"
			}
			b.Run("keel/jobs/"+layout+expired, func(b *testing.B) { jobsRetention(b, n, partitioned) })
			b.Run("keel/outbox/"+layout+expired, func(b *testing.B) { outboxRetention(b, n, partitioned) })
		}
	}
}

// jobsRetention runs the jobs case; partitioned: on a keel.jobs partitioned
// before the history was written, whose retention drops partitions.
func jobsRetention(b *testing.B, history int, partitioned bool) {
	ctx := context.Background()
	var handled atomic.Int64
	sys := newKeel(b, jobs.Config{
		Workers:            keelWorkers(func(int64) { handled.Add(1) }),
		CompletedRetention: retentionPeriod,
	}).(*keelSystem)
	var cutoff any = time.Now().Add(-retentionPeriod)
	left, counted := jobsExpiredLeft, jobsExpiredCount
	if partitioned {
		partitionedHistory(b, sys.db, migrations.PartitionJobs, history, func(from, to int) historyStep {
			return historyStep{insertJobsHistoryPart, []any{history, from, to}}
		})
		sys.history = lastID(b, sys.db, lastJobID)
	} else {
		sys.addHistory(b, history)
	}
	if err := sys.insertMany(ctx, workJobs); err != nil {
		b.Fatal(err)
	}
	if partitioned {
		cutoff, left, counted = firstKept(b, sys.db, jobsFirstKept, cutoff.(time.Time)), jobsBelowLeft, jobsBelowCount
	}
	expired := count(b, sys.db, counted, cutoff)
	start := time.Now()
	if err := sys.start(ctx); err != nil {
		b.Fatal(err)
	}
	deleted := waitDeleted(b, sys.db, left, cutoff)
	waitAll(b, &handled, func() int64 {
		n, err := sys.completed(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return n
	})
	worked := time.Since(start)
	took := deleted()
	if err := sys.stop(ctx); err != nil {
		b.Fatal(err)
	}
	report(b, expired, took, worked, workJobs, "jobs/s")
}

// outboxRetention runs the outbox case; partitioned as jobsRetention.
func outboxRetention(b *testing.B, history int, partitioned bool) {
	pool := freshDB(b, true, 16)
	var cutoff any = time.Now().Add(-retentionPeriod)
	left, counted := outboxExpiredLeft, outboxExpiredCount
	if partitioned {
		partitionedHistory(b, pool, migrations.PartitionOutbox, history, func(from, to int) historyStep {
			return historyStep{insertOutboxHistoryPart, []any{history, 0, payload, from, to}}
		})
	} else {
		outboxHistory(b, pool, history, 0)
	}
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer box.Close()
	keelEnqueue(b, pool, box, 1000, relayMessages/1000, noKey)
	if partitioned {
		cutoff, left, counted = firstKept(b, pool, outboxFirstKept, cutoff.(time.Time)), outboxBelowLeft, outboxBelowCount
	}
	expired := count(b, pool, counted, cutoff)
	pub := &countingPublisher{}
	r, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{Retention: retentionPeriod})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx) })
	deleted := waitDeleted(b, pool, left, cutoff)
	waitCount(b, &pub.n, relayMessages)
	relayed := time.Since(start)
	took := deleted()
	cancel()
	wg.Wait()
	report(b, expired, took, relayed, relayMessages, "msgs/s")
}

// count runs a count with the cutoff (a time, or the first key retention
// keeps).
func count(b *testing.B, pool *pgxpool.Pool, stmt string, cutoff any) int64 {
	b.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), stmt, cutoff).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		b.Fatal("no history is past retention")
	}
	return n
}

// waitDeleted polls, from now on, until no row before cutoff is left; the
// function it returns waits for that and gives the time it took.
func waitDeleted(b *testing.B, pool *pgxpool.Pool, stmt string, cutoff any) func() time.Duration {
	start := time.Now()
	done := make(chan time.Duration, 1)
	failed := make(chan error, 1)
	go func() {
		deadline := start.Add(10 * time.Minute)
		for time.Now().Before(deadline) {
			var left bool
			if err := pool.QueryRow(context.Background(), stmt, cutoff).Scan(&left); err != nil {
				failed <- err
				return
			}
			if !left {
				done <- time.Since(start)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		failed <- fmt.Errorf("retention left expired rows after 10 minutes")
	}()
	return func() time.Duration {
		select {
		case d := <-done:
			return d
		case err := <-failed:
			b.Fatal(err)
			return 0
		}
	}
}

// report gives retention's rate and the workload's.
func report(b *testing.B, expired int64, deleting, working time.Duration, work int, unit string) {
	b.ReportMetric(float64(expired)/deleting.Seconds(), "deleted/s")
	b.ReportMetric(float64(work)/working.Seconds(), unit)
}
