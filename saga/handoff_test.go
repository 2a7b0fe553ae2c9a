package saga_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// firstJob is the first job of a run (keel.saga.run, args run_id) as
// stored.
type firstJob struct {
	state     string
	attempt   int
	attempted bool // attempted_at is set
	// claimedAtStart: attempted_at = created_at, so the job was written
	// claimed by the start's own statement.
	claimedAtStart bool
	// claimedLater: attempted_at > created_at, so a fetcher claimed it
	// after the start committed.
	claimedLater bool
	owner        *string
	createdAt    time.Time
}

func readFirstJob(t *testing.T, pool *pgxpool.Pool, runID string) firstJob {
	t.Helper()
	var j firstJob
	err := pool.QueryRow(context.Background(), `SELECT state::text, attempt, attempted_at IS NOT NULL,
			coalesce(attempted_at = created_at, false), coalesce(attempted_at > created_at, false), owner, created_at
		FROM keel.jobs WHERE kind = 'keel.saga.run' AND args->>'run_id' = $1 ORDER BY id LIMIT 1`, runID).
		Scan(&j.state, &j.attempt, &j.attempted, &j.claimedAtStart, &j.claimedLater, &j.owner, &j.createdAt)
	if err != nil {
		t.Fatalf("first job of run %s: %v", runID, err)
	}
	return j
}

// echo registers a one-step workflow that returns its input.
func echo(reg *saga.Registry) {
	saga.Register(reg, "echo", 1, func(ctx saga.Context, n int) (int, error) {
		return saga.Step(ctx, "echo", func(context.Context) (int, error) { return n, nil }, nil)
	})
}

// startAll starts a run of echo with each input from its own goroutine, all
// at once, and returns the runs in input order.
func startAll(t *testing.T, e *saga.Engine, pool *pgxpool.Pool, inputs []int, opts func(i int) *saga.StartOpts) []*saga.Run {
	t.Helper()
	runs := make([]*saga.Run, len(inputs))
	errs := make([]error, len(inputs))
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, in := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			runs[i], errs[i] = e.StartRun(context.Background(), pool, "echo", in, opts(i))
		}()
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	return runs
}

// awaitEcho waits for a run of echo to succeed with want.
func awaitEcho(t *testing.T, e *saga.Engine, runID string, want int) *saga.Run {
	t.Helper()
	done := await(t, e, runID)
	if out, err := saga.Result[int](done); err != nil || out != want {
		t.Fatalf("run %s: %d, %v (status %s); want %d", runID, out, err, done.Status, want)
	}
	return done
}

// TestStartedRunsAreHandedOff: a started engine writes the first job of a
// run started on its pool claimed by its own jobs client (attempted_at =
// created_at, attempt 1, owner the client) and runs it at once — a start
// alone and starts grouped from many goroutines.
func TestStartedRunsAreHandedOff(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 12)
	reg := saga.NewRegistry()
	echo(reg)
	cfg := testConfig()
	cfg.MaxConcurrentRuns = 500 // a worker free for every start, whenever the previous runs' are freed
	e := newEngineWith(t, pool, reg, cfg, true)
	checkHandedOff := func(run *saga.Run, want int) {
		t.Helper()
		awaitEcho(t, e, run.ID, want)
		j := readFirstJob(t, pool, run.ID)
		if !j.claimedAtStart || j.attempt != 1 || j.state != "completed" {
			t.Fatalf("run %s: first job %+v; want written claimed (attempted_at = created_at), completed at attempt 1", run.ID, j)
		}
	}

	alone := start(t, e, pool, "echo", 42, nil)
	if alone.Status != saga.StatusPending {
		t.Fatalf("started run is %s", alone.Status)
	}
	checkHandedOff(alone, 42)

	// Starts from many goroutines at once go through the group commit,
	// several in one statement; until one round has grouped some, start
	// another.
	const callers = 20
	grouped := false
	for round := 0; round < 5 && !grouped; round++ {
		inputs := make([]int, callers)
		for i := range inputs {
			inputs[i] = round*callers + i
		}
		runs := startAll(t, e, pool, inputs, func(int) *saga.StartOpts { return nil })
		createdAt := map[time.Time]int{}
		for i, run := range runs {
			checkHandedOff(run, inputs[i])
			createdAt[readFirstJob(t, pool, run.ID).createdAt]++
		}
		for _, n := range createdAt {
			grouped = grouped || n > 1 // one transaction: one now()
		}
	}
	if !grouped {
		t.Fatalf("in 5 rounds of %d concurrent starts no two were written together", callers)
	}
}

// TestHandOffOwner: the job of a start handed off is owned by the engine's
// jobs client while it runs.
func TestHandOffOwner(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	entered := make(chan string, 1)
	release := make(chan struct{})
	saga.Register(reg, "held", 1, func(ctx saga.Context, n int) (int, error) {
		return saga.Step(ctx, "hold", func(sctx context.Context) (int, error) {
			entered <- ctx.RunID()
			select {
			case <-release:
				return n, nil
			case <-sctx.Done():
				return 0, sctx.Err()
			}
		}, nil)
	})
	e := newEngine(t, pool, reg, true)
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the engine stops, should the test fail
	run := start(t, e, pool, "held", 3, nil)
	if got := <-entered; got != run.ID {
		t.Fatalf("step of run %s entered, want %s", got, run.ID)
	}
	j := readFirstJob(t, pool, run.ID)
	if j.state != "running" || !j.claimedAtStart || j.attempt != 1 || j.owner == nil || *j.owner != e.Jobs().ID() {
		t.Fatalf("job of a run in its step: %+v; want running at attempt 1, written claimed by %s", j, e.Jobs().ID())
	}
	unblock()
	if out, err := saga.Result[int](await(t, e, run.ID)); err != nil || out != 3 {
		t.Fatalf("result %d, %v", out, err)
	}
}

// TestStartIntoPausedQueue: a start into a paused queue, by a started
// engine that works it, leaves the first job available and the run
// pending, alone or grouped, while starts into a running queue in the same
// group are handed off; once the queue resumes, its runs succeed.
func TestStartIntoPausedQueue(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 12)
	reg := saga.NewRegistry()
	echo(reg)
	cfg := testConfig()
	cfg.Jobs.Queues = map[string]jobs.QueueConfig{"held": {MaxWorkers: 50}}
	e := newEngineWith(t, pool, reg, cfg, true)
	ctx := context.Background()
	if err := e.Jobs().QueuePause(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	held := &saga.StartOpts{Queue: "held"}
	checkHeld := func(run *saga.Run) {
		t.Helper()
		if run.Queue != "held" {
			t.Fatalf("run %s in queue %q", run.ID, run.Queue)
		}
		j := readFirstJob(t, pool, run.ID)
		if j.state != "available" || j.attempted || j.attempt != 0 || j.owner != nil {
			t.Fatalf("run %s in a paused queue: first job %+v; want available, never attempted", run.ID, j)
		}
		if got, err := e.Get(ctx, pool, run.ID); err != nil || got.Status != saga.StatusPending {
			t.Fatalf("run %s in a paused queue: %+v, %v; want pending", run.ID, got, err)
		}
	}

	alone := start(t, e, pool, "echo", 1, held)
	checkHeld(alone)

	const callers = 20
	inputs := make([]int, callers)
	for i := range inputs {
		inputs[i] = 100 + i
	}
	// Even inputs into the paused queue, odd ones into the engine's own.
	runs := startAll(t, e, pool, inputs, func(i int) *saga.StartOpts {
		if i%2 == 0 {
			return held
		}
		return nil
	})
	for i, run := range runs {
		if i%2 == 0 {
			checkHeld(run)
			continue
		}
		awaitEcho(t, e, run.ID, inputs[i])
		if j := readFirstJob(t, pool, run.ID); !j.claimedAtStart || j.attempt != 1 {
			t.Fatalf("run %s in a running queue: first job %+v; want written claimed", run.ID, j)
		}
	}
	// Still held: the run of a paused queue started first did not move.
	checkHeld(alone)

	if err := e.Jobs().QueueResume(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	heldInputs := map[*saga.Run]int{alone: 1}
	for i, run := range runs {
		if i%2 == 0 {
			heldInputs[run] = inputs[i]
		}
	}
	for r, in := range heldInputs {
		awaitEcho(t, e, r.ID, in)
		if j := readFirstJob(t, pool, r.ID); !j.claimedLater || j.attempt != 1 || j.state != "completed" {
			t.Fatalf("run %s after the resume: first job %+v; want claimed after it was written, completed at attempt 1", r.ID, j)
		}
	}
}

// TestStartWithNoFreeWorker: with MaxConcurrentRuns 1 and a run holding
// the worker in a step, a second start writes its job available, for the
// fetcher; once the first run ends, both succeed.
func TestStartWithNoFreeWorker(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	saga.Register(reg, "gate", 1, func(ctx saga.Context, block bool) (bool, error) {
		return saga.Step(ctx, "gate", func(sctx context.Context) (bool, error) {
			if !block {
				return false, nil
			}
			entered <- struct{}{}
			select {
			case <-release:
				return true, nil
			case <-sctx.Done():
				return false, sctx.Err()
			}
		}, nil)
	})
	cfg := testConfig()
	cfg.MaxConcurrentRuns = 1
	e := newEngineWith(t, pool, reg, cfg, true)
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the engine stops, should the test fail
	ctx := context.Background()

	first := start(t, e, pool, "gate", true, nil)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first run did not reach its step")
	}
	if j := readFirstJob(t, pool, first.ID); j.state != "running" || !j.claimedAtStart || j.attempt != 1 {
		t.Fatalf("first run: job %+v; want written claimed and running", j)
	}
	second := start(t, e, pool, "gate", false, nil)
	if j := readFirstJob(t, pool, second.ID); j.state != "available" || j.attempted || j.attempt != 0 {
		t.Fatalf("second run with no worker free: job %+v; want available, never attempted", j)
	}
	if got, err := e.Get(ctx, pool, second.ID); err != nil || got.Status != saga.StatusPending {
		t.Fatalf("second run with no worker free: %+v, %v; want pending", got, err)
	}

	unblock()
	for _, tc := range []struct {
		run  *saga.Run
		want bool
	}{{first, true}, {second, false}} {
		done := await(t, e, tc.run.ID)
		if out, err := saga.Result[bool](done); err != nil || out != tc.want {
			t.Fatalf("run %s: %v, %v; want %v", tc.run.ID, out, err, tc.want)
		}
	}
	if j := readFirstJob(t, pool, second.ID); !j.claimedLater || j.attempt != 1 || j.state != "completed" {
		t.Fatalf("second run: job %+v; want claimed by the fetcher after it was written, completed at attempt 1", j)
	}
}

// TestStartOnUnstartedEngine: an engine that is not started (insert-only)
// writes the job available; a started engine of another process on the
// same database runs it.
func TestStartOnUnstartedEngine(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	pool := openPool(t, url, 4)
	reg := saga.NewRegistry()
	echo(reg)
	starter := newEngine(t, pool, reg, false)
	alone := start(t, starter, pool, "echo", 5, nil)
	grouped := startAll(t, starter, pool, []int{6, 7, 8, 9, 10, 11, 12, 13}, func(int) *saga.StartOpts { return nil })
	all := append([]*saga.Run{alone}, grouped...)
	for _, run := range all {
		if j := readFirstJob(t, pool, run.ID); j.state != "available" || j.attempted || j.attempt != 0 || j.owner != nil {
			t.Fatalf("run %s started by an engine not started: job %+v; want available, never attempted", run.ID, j)
		}
	}

	other := openPool(t, url, 8)
	worker := newEngine(t, other, reg, true)
	for i, run := range all {
		awaitEcho(t, worker, run.ID, 5+i)
		if j := readFirstJob(t, pool, run.ID); !j.claimedLater || j.attempt != 1 || j.state != "completed" {
			t.Fatalf("run %s: job %+v; want claimed by the other engine after it was written, completed at attempt 1", run.ID, j)
		}
	}
}

// handoffCrashRunID is the run the crash tests' helper process starts for
// TestHandedOffRunSurvivesAKill.
const handoffCrashRunID = "handoff-crash"

// TestHandedOffRunSurvivesAKill: a run whose first job its starting process
// wrote claimed, killed mid-run, is rescued and finished by another
// process, each step run once but the one in flight at the kill.
func TestHandedOffRunSurvivesAKill(t *testing.T) {
	t.Parallel()
	url, pool, reg, count := fiveStepsDB(t)
	kill := runHelper(t, "five-started-here", url)
	waitFor(t, "the subprocess to reach step 4", func() bool { return count("s4") == 1 })
	j := readFirstJob(t, pool, handoffCrashRunID)
	if j.state != "running" || !j.claimedAtStart || j.attempt != 1 || j.owner == nil {
		t.Fatalf("the helper's run: job %+v; want written claimed by the helper and running", j)
	}
	kill()

	e := newEngine(t, pool, reg, true)
	done := await(t, e, handoffCrashRunID)
	checkRescuedFiveSteps(t, pool, done, count)
	if j := readFirstJob(t, pool, handoffCrashRunID); j.state != "completed" || j.attempt != 2 {
		t.Errorf("after the rescue the job is %+v; want completed at attempt 2", j)
	}
}

// TestSignalWakesRunHere: a signal sent on the engine's pool to a waiting
// run of the engine's queue writes the wake-up job claimed, in the signal's
// own statement, so the run resumes here with no claim; one sent in the
// caller's transaction leaves the job for a fetcher. Both deliver the value.
func TestSignalWakesRunHere(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	saga.Register(reg, "waits", 1, func(ctx saga.Context, _ int) (int, error) {
		return saga.AwaitSignal[int](ctx, "go", 0)
	})
	e := newEngineWith(t, pool, reg, testConfig(), true)
	ctx := context.Background()
	for i, tc := range []struct {
		name       string
		inCallerTx bool
		wantHere   bool
	}{
		{"engine's pool", false, true},
		{"caller's transaction", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := start(t, e, pool, "waits", 0, nil)
			waitStatus(t, e, pool, run.ID, saga.StatusWaiting)
			if tc.inCallerTx {
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.Signal(ctx, tx, run.ID, "go", i+10, nil); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			} else if err := e.Signal(ctx, pool, run.ID, "go", i+10, nil); err != nil {
				t.Fatal(err)
			}
			done := await(t, e, run.ID)
			if out, err := saga.Result[int](done); err != nil || out != i+10 {
				t.Fatalf("run ended with %d, %v; want %d", out, err, i+10)
			}
			var jobs int
			var here bool
			err := pool.QueryRow(ctx, `SELECT count(*) OVER (), attempted_at = created_at
				FROM keel.jobs WHERE kind = 'keel.saga.run' AND args->>'run_id' = $1 ORDER BY id DESC LIMIT 1`, run.ID).Scan(&jobs, &here)
			if err != nil {
				t.Fatal(err)
			}
			if jobs != 2 || here != tc.wantHere {
				t.Fatalf("%d jobs; the wake-up job written claimed: %v, want %v", jobs, here, tc.wantHere)
			}
		})
	}
}
