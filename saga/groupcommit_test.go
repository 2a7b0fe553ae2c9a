package saga_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/saga"
)

// TestGroupCommitManyRuns: runs executing at once share their checkpoints'
// and finishes' writes, and still each step runs once, each run ends with
// its own result, every step is recorded, every value published, and every
// run's job is completed with its finish.
func TestGroupCommitManyRuns(t *testing.T) {
	t.Parallel()
	const runs, steps = 60, 5
	pool := openPool(t, testdb.NewURL(t), 12)
	reg := saga.NewRegistry()
	var mu sync.Mutex
	calls := map[string]int{}
	saga.Register(reg, "many", 1, func(ctx saga.Context, n int) (int, error) {
		sum := 0
		for i := range steps {
			v, err := saga.Step(ctx, fmt.Sprint("s", i), func(context.Context) (int, error) {
				mu.Lock()
				calls[fmt.Sprint(ctx.RunID(), "/", i)]++
				mu.Unlock()
				return n + i, nil
			}, nil)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, saga.SetValue(ctx, "sum", sum)
	})
	e := newEngine(t, pool, reg, true)
	ids := make([]string, runs)
	for i := range ids {
		ids[i] = start(t, e, pool, "many", i, nil).ID
	}
	for i, id := range ids {
		sum, err := saga.Result[int](await(t, e, id))
		if want := steps*i + steps*(steps-1)/2; err != nil || sum != want {
			t.Fatalf("run %d: %d, %v; want %d", i, sum, err, want)
		}
		var published int
		if err := e.GetValue(context.Background(), id, "sum", &published); err != nil || published != sum {
			t.Fatalf("run %d published %d, %v", i, published, err)
		}
	}
	mu.Lock()
	for key, n := range calls {
		if n != 1 {
			t.Errorf("step %s ran %d times", key, n)
		}
	}
	if len(calls) != runs*steps {
		t.Errorf("%d steps ran, want %d", len(calls), runs*steps)
	}
	mu.Unlock()
	// A job completed in its run's finishing transaction has the finish's
	// now() as its finalized_at.
	var recorded, open, apart int
	err := pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM keel.saga_steps WHERE status = 'completed'),
		(SELECT count(*) FROM keel.jobs WHERE kind = 'keel.saga.run' AND state <> 'completed'),
		(SELECT count(*) FROM keel.jobs j JOIN keel.saga_runs r ON r.id = j.args->>'run_id'
		 WHERE j.finalized_at IS DISTINCT FROM r.finished_at)`).Scan(&recorded, &open, &apart)
	if err != nil {
		t.Fatal(err)
	}
	if recorded != runs*(steps+1) || open != 0 || apart != 0 {
		t.Fatalf("%d steps recorded (want %d), %d run jobs not completed, %d completed apart from their run's finish",
			recorded, runs*(steps+1), open, apart)
	}
}

// callerHook stores, in every write's Carrier, the caller named in its
// context.
type callerHook struct{ keeltype.NoHook }

type callerKey struct{}

func (callerHook) Start(ctx context.Context, op keeltype.Operation) (context.Context, func(keeltype.Outcome)) {
	if name, ok := ctx.Value(callerKey{}).(string); ok && op.Carrier != nil {
		op.Carrier["caller"] = name
	}
	return ctx, func(keeltype.Outcome) {}
}

// TestGroupedStarts: StartRuns made at once on the engine's pool commit
// together, and still each is its own start: one run and one first job per
// id, a second start of an id returns the run, a start of an id another
// workflow holds fails alone, and each first job carries the trace context
// of its own start.
func TestGroupedStarts(t *testing.T) {
	t.Parallel()
	const callers = 40
	pool := openPool(t, testdb.NewURL(t), 12)
	reg := saga.NewRegistry()
	saga.Register(reg, "greet", 1, func(ctx saga.Context, n int) (int, error) { return n, nil })
	saga.Register(reg, "other", 1, func(ctx saga.Context, n int) (int, error) { return n, nil })
	cfg := testConfig()
	cfg.Hook = callerHook{}
	e, err := saga.NewEngine(pool, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.StartRun(ctx, pool, "other", 0, &saga.StartOpts{RunID: "taken"}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		run *saga.Run
		err error
	}
	results := make([]result, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("run-", i/2) // two starts of each id
			if i == callers-1 {
				id = "taken"
			}
			cctx := context.WithValue(ctx, callerKey{}, fmt.Sprint("caller-", i))
			run, err := e.StartRun(cctx, pool, "greet", i, &saga.StartOpts{RunID: id})
			results[i] = result{run, err}
		}()
	}
	wg.Wait()
	for i, r := range results {
		switch {
		case i == callers-1:
			if !errors.Is(r.err, saga.ErrRunIDInUse) {
				t.Fatalf("start of an id another workflow holds: %v", r.err)
			}
		case r.err != nil || r.run.ID != fmt.Sprint("run-", i/2) || r.run.Workflow != "greet":
			t.Fatalf("start %d: %+v, %v", i, r.run, r.err)
		}
	}
	rows, err := pool.Query(ctx, `SELECT r.id, r.input::int, count(j.id), min(j.metadata->'keel_trace'->>'caller')
		FROM keel.saga_runs r LEFT JOIN keel.jobs j ON j.args->>'run_id' = r.id
		WHERE r.workflow = 'greet' GROUP BY r.id, r.input`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, caller string
		var input, jobs int
		if err := rows.Scan(&id, &input, &jobs, &caller); err != nil {
			t.Fatal(err)
		}
		n++
		if jobs != 1 || caller != fmt.Sprint("caller-", input) {
			t.Errorf("run %s (input %d): %d jobs, trace of %q", id, input, jobs, caller)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != callers/2 {
		t.Fatalf("%d runs, want %d", n, callers/2)
	}
}

// insertCounter is a jobs hook that counts the job inserts reported to it
// and how many failed.
type insertCounter struct {
	keeltype.NoHook
	mu          sync.Mutex
	ok, refused int
}

func (h *insertCounter) Start(ctx context.Context, op keeltype.Operation) (context.Context, func(keeltype.Outcome)) {
	if op.Kind != keeltype.OpJobInsert {
		return ctx, func(keeltype.Outcome) {}
	}
	return ctx, func(o keeltype.Outcome) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if o.Err != nil {
			h.refused++
		} else {
			h.ok++
		}
	}
}

// TestLoneStarts: a start that commits alone writes its run and first job
// in one statement, with what a grouped start writes: one job per run,
// queued in the run's queue with its trace context, the insert reported to
// the jobs' hook; a second start of an id returns the run and inserts no
// job; a start of an id another workflow holds fails.
func TestLoneStarts(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 4)
	reg := saga.NewRegistry()
	saga.Register(reg, "greet", 1, func(ctx saga.Context, n int) (int, error) { return n, nil })
	saga.Register(reg, "other", 1, func(ctx saga.Context, n int) (int, error) { return n, nil })
	cfg := testConfig()
	cfg.Hook = callerHook{}
	counter := &insertCounter{}
	cfg.Jobs.Hook = counter
	e, err := saga.NewEngine(pool, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.StartRun(ctx, pool, "other", 0, &saga.StartOpts{RunID: "taken"}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		cctx := context.WithValue(ctx, callerKey{}, fmt.Sprint("caller-", i))
		run, err := e.StartRun(cctx, pool, "greet", i, &saga.StartOpts{RunID: fmt.Sprint("run-", i/2), Queue: "lone"})
		if err != nil || run.ID != fmt.Sprint("run-", i/2) || run.Workflow != "greet" || run.Queue != "lone" {
			t.Fatalf("start %d: %+v, %v", i, run, err)
		}
	}
	if _, err := e.StartRun(ctx, pool, "greet", 9, &saga.StartOpts{RunID: "taken"}); !errors.Is(err, saga.ErrRunIDInUse) {
		t.Fatalf("start of an id another workflow holds: %v", err)
	}
	rows, err := pool.Query(ctx, `SELECT r.id, r.input::int, count(j.id), min(j.metadata->'keel_trace'->>'caller'),
		       bool_and(j.kind = 'keel.saga.run' AND j.queue = 'lone' AND j.state = 'available'
		                AND j.max_attempts = 1048576 AND (j.args->>'generation')::int = r.generation)
		FROM keel.saga_runs r LEFT JOIN keel.jobs j ON j.args->>'run_id' = r.id
		WHERE r.workflow = 'greet' GROUP BY r.id, r.input`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, caller string
		var input, jobs int
		var shaped bool
		if err := rows.Scan(&id, &input, &jobs, &caller, &shaped); err != nil {
			t.Fatal(err)
		}
		n++
		if jobs != 1 || caller != fmt.Sprint("caller-", input) || !shaped {
			t.Errorf("run %s (input %d): %d jobs, trace of %q, shaped as a run's first job: %v", id, input, jobs, caller, shaped)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d runs, want 3", n)
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	// The first start of "taken", the three new runs; the three second
	// starts and the foreign one inserted no job.
	if counter.ok != 4 || counter.refused != 4 {
		t.Fatalf("job inserts reported: %d, refused: %d; want 4 and 4", counter.ok, counter.refused)
	}
}

// TestAwaitedRunAsStored: a run that ends through the group commit is handed
// to its Await as the database stored it — status, output, error, times —
// for runs that succeed and runs that fail, started together.
func TestAwaitedRunAsStored(t *testing.T) {
	t.Parallel()
	const runs = 24
	pool := openPool(t, testdb.NewURL(t), 12)
	reg := saga.NewRegistry()
	release := make(chan struct{})
	saga.Register(reg, "held", 1, func(ctx saga.Context, n int) (map[string]int, error) {
		if _, err := saga.Step(ctx, "hold", func(context.Context) (int, error) { <-release; return n, nil }, nil); err != nil {
			return nil, err
		}
		if n%2 == 1 {
			return nil, fmt.Errorf("run %d fails", n)
		}
		return map[string]int{"n": n}, nil
	})
	e := newEngine(t, pool, reg, true)
	ctx := context.Background()
	awaited := make([]*saga.Run, runs)
	errs := make([]error, runs)
	var started, done sync.WaitGroup
	for i := range runs {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			run, err := e.StartRun(ctx, pool, "held", i, nil)
			started.Done()
			if err != nil {
				errs[i] = err
				return
			}
			awaited[i], errs[i] = e.Await(ctx, run.ID)
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	for i, got := range awaited {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		stored, err := e.Get(ctx, pool, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != stored.Status || !bytes.Equal(compactJSON(t, got.Output), compactJSON(t, stored.Output)) ||
			(got.Error == nil) != (stored.Error == nil) || got.Resumes != stored.Resumes || got.Queue != stored.Queue ||
			!got.CreatedAt.Equal(stored.CreatedAt) || !got.StartedAt.Equal(stored.StartedAt) ||
			!got.FinishedAt.Equal(stored.FinishedAt) || !got.UpdatedAt.Equal(stored.UpdatedAt) || !got.Deadline.Equal(stored.Deadline) {
			t.Fatalf("run %d awaited as %+v, stored as %+v", i, got, stored)
		}
		if got.Error != nil && (got.Error.Kind != stored.Error.Kind || got.Error.Message != stored.Error.Message) {
			t.Fatalf("run %d: awaited error %+v, stored %+v", i, got.Error, stored.Error)
		}
		wantFailed := i%2 == 1
		if wantFailed != (got.Status == saga.StatusFailed) || wantFailed == (got.Error == nil) {
			t.Fatalf("run %d: status %s, error %v", i, got.Status, got.Error)
		}
		if !wantFailed {
			out, err := saga.Result[map[string]int](got)
			if err != nil || out["n"] != i {
				t.Fatalf("run %d: result %v, %v", i, out, err)
			}
		}
	}
}

// compactJSON returns raw without insignificant space, nil as nil.
func compactJSON(t *testing.T, raw []byte) []byte {
	t.Helper()
	if raw == nil {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
