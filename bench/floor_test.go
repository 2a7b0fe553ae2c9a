package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &sagaFloor{pool: pool, starts: make(chan *floorRun, sagaCallers), started: make(chan []startedRun, sagaCallers)}
	go f.start(ctx)
	go f.execute(ctx)
	var n atomic.Int64
	b.ReportMetric(throughput(b, sagaCallers, sagaWorkflows, func() error { return f.run(ctx, n.Add(1)) }), "workflows/s")
}

// sagaFloor is the statements a no-op three-step run costs keel, batched as
// keel's group commit batches them, with no client, handler, hook or
// notification around them. Callers hand their runs to a start loop, which
// inserts every run handed to it since its last round with its first job,
// written claimed, in one statement (StartRunsWithJobs, as concurrent
// StartRuns on the pool of a started engine are written), and hands them
// to an execute loop. It checkpoints each of the three steps of all the
// runs handed to it and ends them with their jobs (CommitMany, one
// statement a round); then their callers return.
type sagaFloor struct {
	pool    *pgxpool.Pool
	starts  chan *floorRun
	started chan []startedRun
}

type floorRun struct {
	id    string
	ended chan error
}

// startedRun is a run the start loop inserted, with its claimed job.
type startedRun struct {
	r     *floorRun
	epoch int64
	job   db.KeelJob
}

func (f *sagaFloor) run(ctx context.Context, n int64) error {
	r := &floorRun{id: "floor-" + strconv.FormatInt(n, 10), ended: make(chan error, 1)}
	f.starts <- r
	return <-r.ended
}

// start inserts the runs handed to it, a round at a time, each with its
// first job claimed, in one statement.
func (f *sagaFloor) start(ctx context.Context) {
	for {
		round := drain(ctx, f.starts)
		if round == nil {
			return
		}
		type item = map[string]any
		runs := make([]item, len(round))
		byID := make(map[string]*floorRun, len(round))
		for i, r := range round {
			byID[r.id] = r
			runs[i] = item{"id": r.id, "workflow": "steps", "version": 1, "queue": jobs.DefaultQueue, "input": 3, "job_metadata": item{}, "claim": true}
		}
		rows, err := db.New(f.pool).StartRunsWithJobs(ctx, db.StartRunsWithJobsParams{
			Owner: ptr("floor"), Runs: mustJSON(runs), JobKind: "keel.saga.run", JobMaxAttempts: 1 << 20,
		})
		started := make([]startedRun, 0, len(rows))
		for _, row := range rows {
			var run db.KeelSagaRun
			var job db.KeelJob
			if err == nil {
				err = errors.Join(json.Unmarshal(row.Run, &run), json.Unmarshal(row.ClaimedJob, &job))
			}
			started = append(started, startedRun{r: byID[run.ID], epoch: run.Epoch, job: job})
		}
		if err == nil && len(started) != len(round) {
			err = fmt.Errorf("started %d of %d runs", len(started), len(round))
		}
		if err != nil {
			f.end(round, err)
			continue
		}
		f.started <- started
	}
}

// execute runs the started runs, a round at a time.
func (f *sagaFloor) execute(ctx context.Context) {
	for {
		rounds := drain(ctx, f.started)
		if rounds == nil {
			return
		}
		var started []startedRun
		for _, r := range rounds {
			started = append(started, r...)
		}
		err := f.round(ctx, started)
		for _, s := range started {
			s.r.ended <- err
		}
	}
}

func (f *sagaFloor) end(round []*floorRun, err error) {
	for _, r := range round {
		r.ended <- err
	}
}

func (f *sagaFloor) round(ctx context.Context, started []startedRun) error {
	q := db.New(f.pool)
	type item = map[string]any
	for seq := 1; seq <= 3; seq++ {
		steps := make([]item, len(started))
		for i, s := range started {
			steps[i] = item{
				"run_id": s.r.id, "epoch": s.epoch, "seq": seq, "name": "s" + strconv.Itoa(seq-1), "kind": "step",
				"status": "completed", "output": 1, "attempts": 1, "started_at": time.Now(),
			}
		}
		rows, err := q.CommitMany(ctx, db.CommitManyParams{Steps: mustJSON(steps), Ends: []byte("[]"), Owner: ptr("floor")})
		if err != nil {
			return err
		}
		if len(rows) != len(started) {
			return fmt.Errorf("checkpointed %d of %d steps", len(rows), len(started))
		}
	}
	ends := make([]item, len(started))
	for i, s := range started {
		ends[i] = item{"id": s.r.id, "epoch": s.epoch, "status": "succeeded", "output": 3, "job_id": s.job.ID, "job_attempt": s.job.Attempt}
	}
	_, err := q.CommitMany(ctx, db.CommitManyParams{Steps: []byte("[]"), Ends: mustJSON(ends), Channel: "keel_saga_done", Payload: "floor"})
	return err
}

// drain waits for one value of c and takes what else is queued; nil when
// ctx ends.
func drain[T any](ctx context.Context, c chan T) []T {
	var out []T
	select {
	case <-ctx.Done():
		return nil
	case v := <-c:
		out = append(out, v)
	}
	for {
		select {
		case v := <-c:
			out = append(out, v)
		default:
			return out
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }
