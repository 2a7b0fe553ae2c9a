package jobs

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
)

// insertClaimed writes a job of kind test in queue already claimed by c, as
// an engine that reserved a worker of c's writes it: running, attempt 1,
// owned by c, attempted and heartbeat now.
func insertClaimed(t *testing.T, pool *pgxpool.Pool, c *Client, queue string, n int) db.KeelJob {
	t.Helper()
	rows, err := pool.Query(context.Background(), `INSERT INTO keel.jobs (kind, queue, args, state, attempt, attempted_at, heartbeat_at, owner)
		VALUES ('test', $1, jsonb_build_object('n', $2::int), 'running', 1, now(), now(), $3) RETURNING *`, queue, n, c.ID())
	if err != nil {
		t.Fatal(err)
	}
	row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[db.KeelJob])
	if err != nil {
		t.Fatal(err)
	}
	if row.State != db.KeelJobStateRunning || row.Owner == nil || *row.Owner != c.ID() || row.Attempt != 1 {
		t.Fatalf("inserted claimed job = %+v", row)
	}
	return row
}

// reserveWorkers is c.ReserveWorkers that, should the test fail with the
// reservation outstanding, frees it when the test ends, before the client
// is stopped (Stop waits for reserved workers).
func reserveWorkers(t *testing.T, c *Client, queue string, n int) (int, func(context.Context, []db.KeelJob)) {
	t.Helper()
	reserved, run := c.ReserveWorkers(queue, n)
	if run == nil {
		t.Fatalf("ReserveWorkers(%q, %d) returned a nil run", queue, n)
	}
	t.Cleanup(func() { run(context.Background(), nil) }) // run acts once: no-op when called already
	return reserved, run
}

// reserveFree is reserveWorkers that waits until it reserves want workers:
// a claim of the queue's fetcher in flight holds the workers it claims for.
func reserveFree(t *testing.T, c *Client, queue string, n, want int) func(context.Context, []db.KeelJob) {
	t.Helper()
	var run func(context.Context, []db.KeelJob)
	waitFor(t, fmt.Sprintf("a reservation of %d of %d workers of %q", want, n, queue), func() bool {
		var got int
		got, run = reserveWorkers(t, c, queue, n)
		if got != want {
			run(context.Background(), nil)
		}
		return got == want
	})
	return run
}

// TestReserveWorkersCounts: ReserveWorkers takes only the free workers of a
// queue a started client works, holds them until run is called (once), and
// takes none before Start or after Stop.
func TestReserveWorkersCounts(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil)
	cfg := fastConfig(w)
	cfg.Queues = map[string]QueueConfig{"q": {MaxWorkers: 2}}
	c, err := NewClient(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reserve := func(queue string, n, want int) func(context.Context, []db.KeelJob) {
		t.Helper()
		if want > 0 {
			return reserveFree(t, c, queue, n, want)
		}
		got, run := reserveWorkers(t, c, queue, n)
		if got != want {
			t.Fatalf("ReserveWorkers(%q, %d) = %d, want %d", queue, n, got, want)
		}
		return run
	}

	reserve("q", 1, 0)(ctx, nil) // not started

	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.StopAndCancel(context.Background()) })
	reserve("other", 1, 0)(ctx, nil) // not a queue the client works
	reserve(DefaultQueue, 1, 0)(ctx, nil)

	first := reserve("q", 5, 2)
	reserve("q", 1, 0)(ctx, nil) // both workers reserved
	first(ctx, nil)              // frees both
	second := reserve("q", 5, 2)
	second(ctx, nil)
	second(ctx, nil) // run is called once: a second call frees nothing more
	one := reserve("q", 1, 1)
	reserve("q", 5, 1)(ctx, nil)
	one(ctx, nil)
	reserve("q", 5, 2)(ctx, nil)

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	reserve("q", 1, 0)(ctx, nil) // stopped
}

// TestReservedWorkerRunsClaimedJob: a job written already claimed by the
// client and handed to run runs its handler once, on the reserved worker,
// and is completed at attempt 1; while it runs its worker stays busy.
func TestReservedWorkerRunsClaimedJob(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	var calls atomic.Int64
	var attempt atomic.Int64
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		calls.Add(1)
		attempt.Store(int64(j.Attempt))
		started <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil)
	cfg := fastConfig(w)
	cfg.Queues = map[string]QueueConfig{"q": {MaxWorkers: 2}}
	c := startClient(t, pool, cfg)
	ctx := context.Background()

	run := reserveFree(t, c, "q", 1, 1)
	job := insertClaimed(t, pool, c, "q", 7)
	run(ctx, []db.KeelJob{job})
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the claimed job's handler did not start")
	}
	// The running job holds its worker: one of two is left.
	reserveFree(t, c, "q", 5, 1)(ctx, nil)
	close(release)
	row := waitState(t, c, job.ID, StateCompleted)
	if row.Attempt != 1 || attempt.Load() != 1 {
		t.Fatalf("completed at attempt %d (handler saw %d), want 1", row.Attempt, attempt.Load())
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	// Its worker is free again.
	waitFor(t, "both workers to be free", func() bool {
		got, more := reserveWorkers(t, c, "q", 5)
		more(ctx, nil)
		return got == 2
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// TestFetcherCountsReservedWorkers: while a queue's only worker is
// reserved, its fetcher claims nothing; once run frees the worker it claims
// the waiting job.
func TestFetcherCountsReservedWorkers(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil)
	cfg := fastConfig(w)
	cfg.Queues = map[string]QueueConfig{"q": {MaxWorkers: 1}}
	c := startClient(t, pool, cfg)
	ctx := context.Background()

	run := reserveFree(t, c, "q", 1, 1)
	job := insert(t, c, testArgs{N: 1}, &InsertOpts{Queue: "q"})
	// A notification and several polls pass with the worker reserved.
	time.Sleep(5 * cfg.FetchPollInterval)
	row, err := c.JobGet(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.State != StateAvailable {
		t.Fatalf("with the only worker reserved the job is %s, want available", row.State)
	}
	run(ctx, nil)
	if row := waitState(t, c, job.ID, StateCompleted); row.Attempt != 1 {
		t.Fatalf("completed at attempt %d", row.Attempt)
	}
}

// TestStopWaitsForReservedWorkers: Stop does not return while a reservation
// is outstanding; the claimed job run is then given runs to completion
// before Stop returns.
func TestStopWaitsForReservedWorkers(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	var calls atomic.Int64
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		calls.Add(1)
		return nil
	}, nil)
	cfg := fastConfig(w)
	cfg.Queues = map[string]QueueConfig{"q": {MaxWorkers: 2}}
	c := startClient(t, pool, cfg)
	ctx := context.Background()

	run := reserveFree(t, c, "q", 2, 2)
	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop(ctx) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with two workers reserved", err)
	case <-time.After(300 * time.Millisecond):
	}
	// Stopping: no new reservations.
	if got, more := reserveWorkers(t, c, "q", 1); got != 0 {
		more(ctx, nil)
		t.Fatalf("reserved %d while stopping", got)
	}
	job := insertClaimed(t, pool, c, "q", 1)
	run(ctx, []db.KeelJob{job}) // one worker runs the job, the other is freed
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return after run")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times before Stop returned, want 1", n)
	}
	row, err := c.JobGet(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.State != StateCompleted || row.Attempt != 1 {
		t.Fatalf("after Stop the job is %s at attempt %d, want completed at 1", row.State, row.Attempt)
	}
}

// TestReserveDuringClaimKeepsMaxWorkers: a reservation made while the
// queue's fetcher is claiming waits for the claim, whose workers are counted
// busy until it ends, so the two together never take more than MaxWorkers;
// the workers the claim did not fill are reserved then. The claim is held
// in flight by a lock on keel.jobs, to widen the window every claim has.
func TestReserveDuringClaimKeepsMaxWorkers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		jobs         int // available when the claim runs
		wantReserved int
	}{
		{"the claim takes the only worker", 1, 0},
		{"the claim finds nothing", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := newPool(t, 8)
			release := make(chan struct{})
			w := NewWorkers()
			AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
				<-release
				return nil
			}, nil)
			cfg := fastConfig(w)
			cfg.Queues = map[string]QueueConfig{"q": {MaxWorkers: 1}}
			c, err := NewClient(pool, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var job *JobRow
			if tc.jobs > 0 {
				job = insert(t, c, testArgs{N: 1}, &InsertOpts{Queue: "q"})
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if _, err := tx.Exec(ctx, "LOCK TABLE keel.jobs IN EXCLUSIVE MODE"); err != nil {
				t.Fatal(err)
			}
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				close(release)
				_ = c.StopAndCancel(context.Background())
			})
			// pool, not tx: a transaction sees one snapshot of pg_stat_activity.
			waitFor(t, "the claim to wait on the lock", func() bool {
				var n int
				if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '-- name: ClaimJobs%'`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n > 0
			})
			type reservation struct {
				n   int
				run func(context.Context, []db.KeelJob)
			}
			got := make(chan reservation, 1)
			go func() {
				n, run := c.ReserveWorkers("q", 1)
				got <- reservation{n, run}
			}()
			select {
			case r := <-got:
				r.run(ctx, nil)
				t.Fatalf("ReserveWorkers returned %d during the claim", r.n)
			case <-time.After(100 * time.Millisecond):
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			r := <-got
			defer r.run(ctx, nil)
			if r.n != tc.wantReserved {
				t.Fatalf("MaxWorkers 1, %d jobs claimable: reserved %d after the claim, want %d", tc.jobs, r.n, tc.wantReserved)
			}
			if job != nil {
				if row, err := c.JobGet(ctx, job.ID); err != nil || row.State != StateRunning {
					t.Fatalf("the claimed job: %+v, %v; want running", row, err)
				}
			}
		})
	}
}
