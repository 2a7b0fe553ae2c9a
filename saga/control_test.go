package saga_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

// twoSteps registers version 1 of "flow": steps first and second, with a
// signal wait between them, so a run parks after first.
func twoSteps(reg *saga.Registry, secondName string) {
	saga.Register(reg, "flow", 1, func(ctx saga.Context, _ int) (string, error) {
		a, err := saga.Step(ctx, "first", func(context.Context) (string, error) { return "a", nil }, nil)
		if err != nil {
			return "", err
		}
		if _, err := saga.AwaitSignal[int](ctx, "go", 0); err != nil {
			return "", err
		}
		b, err := saga.Step(ctx, secondName, func(context.Context) (string, error) { return "b", nil }, nil)
		return a + b, err
	})
}

// A deploy changed the code without bumping the version: where the history
// recorded the signal wait, the new code runs another step. The run fails
// with a NondeterminismError naming both, and is stored even when the new
// step's name cannot be (it is kept with U+FFFD in place of what Postgres
// cannot hold).
func TestNondeterminismIsDetected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, step, got string }{
		{"renamed step", "renamed", "step renamed"},
		{"unstorable name", "re\x00named\xff", "step re\uFFFDnamed\uFFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := openPool(t, testdb.NewURL(t), 8)
			old := saga.NewRegistry()
			twoSteps(old, "second")
			e := newEngine(t, pool, old, true)
			run := start(t, e, pool, "flow", 0, nil)
			waitStatus(t, e, pool, run.ID, saga.StatusWaiting)
			if err := e.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			changed := saga.NewRegistry()
			saga.Register(changed, "flow", 1, func(ctx saga.Context, _ int) (string, error) {
				if _, err := saga.Step(ctx, "first", func(context.Context) (string, error) { return "a", nil }, nil); err != nil {
					return "", err
				}
				return saga.Step(ctx, tc.step, func(context.Context) (string, error) { return "x", nil }, nil)
			})
			deployed := newEngine(t, pool, changed, true)
			if err := deployed.Signal(ctx, pool, run.ID, "go", 1, nil); err != nil {
				t.Fatal(err)
			}
			done := await(t, deployed, run.ID)
			var nd *saga.NondeterminismError
			if done.Status != saga.StatusFailed || !errors.As(done.Err(), &nd) || !errors.Is(done.Err(), saga.ErrNondeterminism) {
				t.Fatalf("run %s: %v", done.Status, done.Err())
			}
			if nd.Seq != 2 || nd.Recorded != "signal go" || nd.Got != tc.got {
				t.Fatalf("nondeterminism error = %+v", nd)
			}
		})
	}
}

func TestUnknownVersionWaits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	v1 := saga.NewRegistry()
	saga.Register(v1, "greet", 1, func(ctx saga.Context, name string) (string, error) { return "hello " + name, nil })
	both := saga.NewRegistry()
	saga.Register(both, "greet", 1, func(ctx saga.Context, name string) (string, error) { return "hello " + name, nil })
	saga.Register(both, "greet", 2, func(ctx saga.Context, name string) (string, error) { return "hi " + name, nil })

	oldWorker := newEngine(t, pool, v1, true)
	starter := newEngine(t, pool, both, false)
	run := start(t, starter, pool, "greet", "ann", nil)
	if run.Version != 2 {
		t.Fatalf("started version %d, want the newest, 2", run.Version)
	}
	waitFor(t, "the run to record why it waits", func() bool {
		r, err := oldWorker.Get(ctx, pool, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status == saga.StatusPending && strings.Contains(r.LastError, "version 2 of workflow \"greet\"")
	})
	if err := starter.Start(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := saga.Result[string](await(t, starter, run.ID))
	if err != nil || got != "hi ann" {
		t.Fatalf("result %q, %v", got, err)
	}
}

func TestIdempotentStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var ran atomic.Int64
	saga.Register(reg, "once", 1, func(ctx saga.Context, n int) (int, error) {
		return saga.Step(ctx, "count", func(context.Context) (int, error) { return int(ran.Add(1)), nil }, nil)
	})
	saga.Register(reg, "other", 1, func(ctx saga.Context, n int) (int, error) { return n, nil })
	e := newEngine(t, pool, reg, true)
	first := start(t, e, pool, "once", 1, &saga.StartOpts{RunID: "order-42"})
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.StartRun(ctx, tx, "once", 2, &saga.StartOpts{RunID: "order-42"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || string(again.Input) != "1" {
		t.Fatalf("second start returned %+v", again)
	}
	if _, err := e.StartRun(ctx, pool, "other", 1, &saga.StartOpts{RunID: "order-42"}); !errors.Is(err, saga.ErrRunIDInUse) {
		t.Fatalf("start of another workflow with the id: %v", err)
	}
	await(t, e, first.ID)
	if ran.Load() != 1 {
		t.Fatalf("ran %d times", ran.Load())
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	saga.Register(reg, "done", 1, func(ctx saga.Context, in map[string]any) (int, error) { return len(in), nil })
	e := newEngine(t, pool, reg, true)
	finished := start(t, e, pool, "done", map[string]any{}, nil)
	await(t, e, finished.ID)
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"unregistered workflow", func() error { _, err := e.StartRun(ctx, pool, "nope", 1, nil); return err }, saga.ErrUnknownWorkflow},
		{"unregistered version", func() error {
			_, err := e.StartRun(ctx, pool, "done", map[string]any{}, &saga.StartOpts{Version: 9})
			return err
		}, saga.ErrUnknownWorkflow},
		{"input of the wrong type", func() error { _, err := e.StartRun(ctx, pool, "done", 3, nil); return err }, saga.ErrInvalidOptions},
		{"input that does not encode", func() error {
			_, err := e.StartRun(ctx, pool, "done", map[string]any{"c": make(chan int)}, nil)
			return err
		}, saga.ErrEncode},
		{"signal to a finished run", func() error { return e.Signal(ctx, pool, finished.ID, "x", 1, nil) }, saga.ErrRunFinished},
		{"signal to a missing run", func() error { return e.Signal(ctx, pool, "missing", "x", 1, nil) }, saga.ErrRunNotFound},
		{"signal that does not encode", func() error { return e.Signal(ctx, pool, finished.ID, "x", func() {}, nil) }, saga.ErrEncode},
		{"cancel a finished run", func() error { return e.Cancel(ctx, pool, finished.ID) }, saga.ErrRunFinished},
		{"resume a succeeded run", func() error { return e.Resume(ctx, pool, finished.ID) }, saga.ErrRunNotFinished},
		{"duplicate registration", func() error {
			return saga.RegisterSafely(reg, "done", 1, func(saga.Context, int) (int, error) { return 0, nil })
		}, saga.ErrInvalidOptions},
	}
	for _, tt := range tests {
		if err := tt.do(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	runs, err := e.List(ctx, nil)
	if err != nil || len(runs) != 1 {
		t.Fatalf("bad input wrote runs: %d, %v", len(runs), err)
	}
}

func TestWorkflowTimeout(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	newUndoTable(t, pool)
	reg := saga.NewRegistry()
	booking(reg, pool, false)
	e := newEngine(t, pool, reg, true)
	run := start(t, e, pool, "booking", "wait", &saga.StartOpts{Timeout: 300 * time.Millisecond})
	done := await(t, e, run.ID)
	if done.Status != saga.StatusFailed || !errors.Is(done.Err(), saga.ErrTimeout) {
		t.Fatalf("run %s: %v", done.Status, done.Err())
	}
	// A loaded machine may reach the deadline before every step ran: each
	// step that completed is undone, newest first, and no other.
	steps, err := e.Steps(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range steps {
		if s.Kind == "step" && s.Status == "completed" {
			want = append([]string{s.Name}, want...)
		}
	}
	if got := undoLog(t, pool); !slices.Equal(got, want) {
		t.Fatalf("compensations %v, want %v (the completed steps, newest first)", got, want)
	}
}

func TestResumeAndFork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var broken atomic.Bool
	broken.Store(true)
	var calls [3]atomic.Int64
	saga.Register(reg, "pipeline", 1, func(ctx saga.Context, _ int) (int, error) {
		sum := 0
		for i := range 3 {
			v, err := saga.Step(ctx, []string{"extract", "transform", "load"}[i], func(context.Context) (int, error) {
				calls[i].Add(1)
				if i == 1 && broken.Load() {
					return 0, errors.New("bad row")
				}
				return i + 1, nil
			}, &saga.StepOpts{MaxAttempts: 1})
			if err != nil {
				return 0, err
			}
			sum = sum*10 + v
		}
		return sum, nil
	})
	e := newEngine(t, pool, reg, true)
	run := start(t, e, pool, "pipeline", 0, nil)
	if done := await(t, e, run.ID); done.Status != saga.StatusFailed {
		t.Fatalf("run %s", done.Status)
	}
	broken.Store(false)
	if err := e.Resume(ctx, pool, run.ID); err != nil {
		t.Fatal(err)
	}
	got, err := saga.Result[int](await(t, e, run.ID))
	if err != nil || got != 123 {
		t.Fatalf("resumed result %d, %v", got, err)
	}
	if calls[0].Load() != 1 || calls[1].Load() != 2 || calls[2].Load() != 1 {
		t.Fatalf("calls after resume: %d %d %d", calls[0].Load(), calls[1].Load(), calls[2].Load())
	}

	fork, err := e.Fork(ctx, pool, run.ID, 2, &saga.ForkOpts{RunID: "forked"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = saga.Result[int](await(t, e, fork.ID))
	if err != nil || got != 123 {
		t.Fatalf("fork result %d, %v", got, err)
	}
	if calls[0].Load() != 1 || calls[1].Load() != 3 || calls[2].Load() != 2 {
		t.Fatalf("calls after fork from step 2: %d %d %d", calls[0].Load(), calls[1].Load(), calls[2].Load())
	}
	forked, err := e.Get(ctx, pool, "forked")
	if err != nil || forked.ForkedFrom != run.ID || forked.ForkedAtSeq != 2 {
		t.Fatalf("fork row %+v, %v", forked, err)
	}
	failed, err := e.List(ctx, &saga.ListParams{Status: saga.StatusSucceeded, Workflow: "pipeline"})
	if err != nil || len(failed) != 2 {
		t.Fatalf("succeeded pipeline runs: %d, %v", len(failed), err)
	}
}

// TestForkWithoutRegistration forks through an engine that registers no
// workflow, as an operator's tool does: the fork keeps its source's version
// and runs where that version is registered; a version asked for must be
// registered in the forking engine.
func TestForkWithoutRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var fixed atomic.Bool
	saga.Register(reg, "mail", 1, func(ctx saga.Context, to string) (string, error) {
		return saga.Step(ctx, "send", func(context.Context) (string, error) {
			if !fixed.Load() {
				return "", errors.New("mail server refused")
			}
			return "sent to " + to, nil
		}, &saga.StepOpts{MaxAttempts: 1})
	})
	worker := newEngine(t, pool, reg, true)
	operator := newEngine(t, pool, saga.NewRegistry(), false)
	run := start(t, worker, pool, "mail", "ops@example.com", nil)
	if done := await(t, worker, run.ID); done.Status != saga.StatusFailed {
		t.Fatalf("run %s, want failed", done.Status)
	}
	for _, version := range []int{1, 2} {
		if _, err := operator.Fork(ctx, pool, run.ID, 1, &saga.ForkOpts{Version: version}); !errors.Is(err, saga.ErrUnknownWorkflow) {
			t.Fatalf("fork to version %d through an engine that registers none: %v, want ErrUnknownWorkflow", version, err)
		}
	}
	fixed.Store(true)
	fork, err := operator.Fork(ctx, pool, run.ID, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fork.Version != 1 || fork.ForkedFrom != run.ID {
		t.Fatalf("fork %+v, want version 1 forked from %s", fork, run.ID)
	}
	got, err := saga.Result[string](await(t, worker, fork.ID))
	if err != nil || got != "sent to ops@example.com" {
		t.Fatalf("fork result %q, %v", got, err)
	}
}
