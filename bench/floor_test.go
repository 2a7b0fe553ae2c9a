package bench

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
)

// The SQL floor: keel's own statements, driven directly in a tight loop
// with no client, relay, handler or notification around them. It shows
// what PostgreSQL allows for keel's schema on this machine, and how much of
// it keel's machinery keeps. Each floor runs the statements keel runs for
// the same work, batch for batch.

// floorBatch is the claim size of the floors: the default batch of keel's
// relay and about what a busy jobs queue claims at once.
const floorBatch = 500

// sqlJobsFloor claims and completes jobs with keel's ClaimJobs and
// CompleteJobs, from two loops (one per core).
func sqlJobsFloor() contender {
	return contender{"sql/tuned", func(b *testing.B, onStart func(int64)) system {
		k := newKeel(b, jobs.Config{}).(*keelSystem)
		return &jobsFloor{keelSystem: k, onStart: onStart}
	}}
}

type jobsFloor struct {
	*keelSystem
	onStart func(int64)
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (f *jobsFloor) start(ctx context.Context) error {
	ctx, f.cancel = context.WithCancel(ctx)
	owner := "floor"
	for range 2 {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			q := db.New(f.db)
			for ctx.Err() == nil {
				rows, err := q.ClaimJobs(ctx, db.ClaimJobsParams{Owner: &owner, Queue: jobs.DefaultQueue, Max: floorBatch})
				if err != nil || len(rows) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				p := db.CompleteJobsParams{Ids: make([]int64, len(rows)), Attempts: make([]int32, len(rows))}
				for i, r := range rows {
					f.onStart(r.ID)
					p.Ids[i], p.Attempts[i] = r.ID, r.Attempt
				}
				if _, err := q.CompleteJobs(ctx, p); err != nil && ctx.Err() == nil {
					panic(err)
				}
			}
		}()
	}
	return nil
}

func (f *jobsFloor) stop(context.Context) error {
	f.cancel()
	f.wg.Wait()
	return nil
}

// outboxFloor claims and marks delivered with keel's OutboxClaim and
// OutboxMarkDelivered, one batch after the other, until nothing is left.
func outboxFloor(b *testing.B, pool *pgxpool.Pool) int {
	b.Helper()
	ctx := context.Background()
	q := db.New(pool)
	total := 0
	for {
		rows, err := q.OutboxClaim(ctx, db.OutboxClaimParams{LeaseMs: 30000, Relay: "floor", BatchSize: floorBatch})
		if err != nil {
			b.Fatal(err)
		}
		if len(rows) == 0 {
			return total
		}
		seqs := make([]int64, len(rows))
		for i, r := range rows {
			seqs[i] = r.Seq
		}
		if _, err := q.OutboxMarkDelivered(ctx, db.OutboxMarkDeliveredParams{Seqs: seqs}); err != nil {
			b.Fatal(err)
		}
		total += len(rows)
	}
}

func benchOutboxFloor(b *testing.B) {
	pool := freshDB(b, true, 16)
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer box.Close()
	keelEnqueue(b, pool, box, 1000, relayMessages/1000, noKey)
	start := time.Now()
	if n := outboxFloor(b, pool); n != relayMessages {
		b.Fatalf("the floor relayed %d of %d messages", n, relayMessages)
	}
	b.ReportMetric(float64(relayMessages)/time.Since(start).Seconds(), "msgs/s")
}

func benchSagaFloor(b *testing.B) {
	pool := freshDB(b, true, benchMaxConn)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportMetric(throughput(b, sagaWorkflows, func() error { return sagaFloor(ctx, pool, n.Add(1)) }), "workflows/s")
}

// sagaFloor is the statements one no-op three-step run costs keel, driven
// directly by each caller: the start (run and job in one transaction), the
// first executor's read, three checkpoints, the finish and the job's
// completion. The job claim, which keel batches across runs, and the
// notifications are left out, so the floor is a little above what the same
// statements could do inside keel.
func sagaFloor(ctx context.Context, pool *pgxpool.Pool, n int64) error {
	id := "floor-" + strconv.FormatInt(n, 10)
	q := db.New(pool)
	var jobID int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		qt := db.New(tx)
		if _, err := qt.InsertRun(ctx, db.InsertRunParams{ID: id, Workflow: "steps", Version: 1, Queue: jobs.DefaultQueue, Input: []byte("3")}); err != nil {
			return err
		}
		job, err := qt.InsertJob(ctx, db.InsertJobParams{
			Kind: "keel.saga.run", Queue: jobs.DefaultQueue, State: db.KeelJobStateRunning, Priority: 1,
			Args: []byte(`{"run_id":"` + id + `","generation":1}`), Metadata: []byte("{}"), Tags: []string{},
			MaxAttempts: 1 << 20, DependsOn: []int64{}, RunWhen: db.KeelJobRunWhenSuccess,
			RunAt: pgtype.Timestamptz{Time: time.Now(), Valid: true},
		})
		jobID = job.ID
		return err
	})
	if err != nil {
		return err
	}
	run, err := q.ReadPendingRun(ctx, db.ReadPendingRunParams{ID: id, Generation: 1})
	if err != nil {
		return err
	}
	owner := "floor"
	for seq := int32(1); seq <= 3; seq++ {
		if _, err := q.Checkpoint(ctx, db.CheckpointParams{
			RunID: id, Epoch: run.Epoch, Seq: seq, Name: "step", Kind: "step", Status: db.KeelSagaStepStatusCompleted,
			Output: []byte(strconv.Itoa(int(seq))), Attempts: 1, StartedAt: pgtype.Timestamptz{Time: time.Now(), Valid: true}, Owner: &owner,
		}); err != nil {
			return err
		}
	}
	if _, err := q.FinishRun(ctx, db.FinishRunParams{Status: db.KeelSagaRunStatusSucceeded, Output: []byte("3"), ID: id, Epoch: run.Epoch}); err != nil {
		return err
	}
	_, err = q.CompleteJobs(ctx, db.CompleteJobsParams{Ids: []int64{jobID}, Attempts: []int32{0}})
	return err
}
