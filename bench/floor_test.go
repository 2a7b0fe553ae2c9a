package bench

import (
	"context"
	"encoding/json"
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
	f := &sagaFloor{pool: pool, starts: make(chan *floorRun, sagaCallers), started: make(chan struct{}, 1), waiting: map[string]*floorRun{}}
	go f.start(ctx)
	go f.execute(ctx)
	var n atomic.Int64
	b.ReportMetric(throughput(b, sagaCallers, sagaWorkflows, func() error { return f.run(ctx, n.Add(1)) }), "workflows/s")
}

// sagaFloor is the statements a no-op three-step run costs keel, batched as
// keel's group commit batches them, with no client, handler, hook or
// notification around them. Callers hand their runs to a start loop, which
// inserts every run handed to it since its last round with its first job in
// one statement (StartRunsWithJobs, as concurrent StartRuns on the engine's
// pool are written). An execute loop claims the available jobs
// (ClaimJobs), reads their runs (ReadPendingRuns), checkpoints each of the
// three steps of all of them and ends them with their jobs (CommitMany, one
// statement a round); then their callers return.
type sagaFloor struct {
	pool    *pgxpool.Pool
	starts  chan *floorRun
	started chan struct{}

	mu      sync.Mutex
	waiting map[string]*floorRun
}

type floorRun struct {
	id    string
	ended chan error
}

func (f *sagaFloor) run(ctx context.Context, n int64) error {
	r := &floorRun{id: "floor-" + strconv.FormatInt(n, 10), ended: make(chan error, 1)}
	f.starts <- r
	return <-r.ended
}

// start inserts the runs handed to it, a round at a time, each with its
// first job, in one statement.
func (f *sagaFloor) start(ctx context.Context) {
	for {
		round := drain(ctx, f.starts)
		if round == nil {
			return
		}
		type item = map[string]any
		runs := make([]item, len(round))
		f.mu.Lock()
		for i, r := range round {
			f.waiting[r.id] = r
			runs[i] = item{"id": r.id, "workflow": "steps", "version": 1, "queue": jobs.DefaultQueue, "input": 3, "job_metadata": item{}}
		}
		f.mu.Unlock()
		_, err := db.New(f.pool).StartRunsWithJobs(ctx, db.StartRunsWithJobsParams{
			Runs: mustJSON(runs), JobKind: "keel.saga.run", JobMaxAttempts: 1 << 20,
		})
		if err != nil {
			f.end(round, err)
			continue
		}
		select {
		case f.started <- struct{}{}:
		default:
		}
	}
}

// execute runs the claimed runs, a round at a time.
func (f *sagaFloor) execute(ctx context.Context) {
	q := db.New(f.pool)
	owner := "floor"
	for ctx.Err() == nil {
		claimed, err := q.ClaimJobs(ctx, db.ClaimJobsParams{Owner: &owner, Queue: jobs.DefaultQueue, Max: floorBatch})
		if err == nil && len(claimed) == 0 {
			select {
			case <-ctx.Done():
			case <-f.started:
			}
			continue
		}
		f.mu.Lock()
		round := make([]*floorRun, len(claimed))
		for i, j := range claimed {
			var args struct {
				RunID string `json:"run_id"`
			}
			_ = json.Unmarshal(j.Args, &args)
			round[i] = f.waiting[args.RunID]
			delete(f.waiting, args.RunID)
		}
		f.mu.Unlock()
		if err == nil {
			err = f.round(ctx, claimed)
		}
		f.end(round, err)
	}
}

func (f *sagaFloor) end(round []*floorRun, err error) {
	for _, r := range round {
		r.ended <- err
	}
}

func (f *sagaFloor) round(ctx context.Context, claimed []db.KeelJob) error {
	q := db.New(f.pool)
	type item = map[string]any
	reads := make([]item, len(claimed))
	jobOf := make(map[string]db.KeelJob, len(claimed))
	for i, j := range claimed {
		var args struct {
			RunID      string `json:"run_id"`
			Generation int64  `json:"generation"`
		}
		if err := json.Unmarshal(j.Args, &args); err != nil {
			return err
		}
		reads[i] = item{"id": args.RunID, "generation": args.Generation}
		jobOf[args.RunID] = j
	}
	runs, err := q.ReadPendingRuns(ctx, mustJSON(reads))
	if err != nil {
		return err
	}
	if len(runs) != len(claimed) {
		return fmt.Errorf("read %d of %d runs", len(runs), len(claimed))
	}
	for seq := 1; seq <= 3; seq++ {
		steps := make([]item, len(runs))
		for i, r := range runs {
			steps[i] = item{
				"run_id": r.ID, "epoch": r.Epoch, "seq": seq, "name": "s" + strconv.Itoa(seq-1), "kind": "step",
				"status": "completed", "output": 1, "attempts": 1, "started_at": time.Now(),
			}
		}
		rows, err := q.CommitMany(ctx, db.CommitManyParams{Steps: mustJSON(steps), Ends: []byte("[]"), Owner: ptr("floor")})
		if err != nil {
			return err
		}
		if len(rows) != len(runs) {
			return fmt.Errorf("checkpointed %d of %d steps", len(rows), len(runs))
		}
	}
	ends := make([]item, len(runs))
	for i, r := range runs {
		j := jobOf[r.ID]
		ends[i] = item{"id": r.ID, "epoch": r.Epoch, "status": "succeeded", "output": 3, "job_id": j.ID, "job_attempt": j.Attempt}
	}
	_, err = q.CommitMany(ctx, db.CommitManyParams{Steps: []byte("[]"), Ends: mustJSON(ends), Channel: "keel_saga_done", Payload: "floor"})
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
