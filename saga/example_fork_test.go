package saga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// Fork starts a new run from a position of another run's history: the
// steps before it replay their recorded outputs without running again, and
// execution goes on from there — to re-run the tail of a failed run once
// the cause is fixed, keeping the original as it was.
func ExampleEngine_Fork() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	var rendered atomic.Int32
	var printerFixed atomic.Bool
	reg := saga.NewRegistry()
	saga.Register(reg, "example-fork-report", 1, func(ctx saga.Context, month string) (string, error) {
		pdf, err := saga.Step(ctx, "render", func(context.Context) (string, error) {
			rendered.Add(1) // an expensive step
			return "report-" + month + ".pdf", nil
		}, nil)
		if err != nil {
			return "", err
		}
		return saga.Step(ctx, "mail", func(context.Context) (string, error) {
			if !printerFixed.Load() {
				return "", errors.New("mail server refused")
			}
			return "mailed " + pdf, nil
		}, &saga.StepOpts{MaxAttempts: 1})
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue: "example-fork",
		Jobs:  jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	id := fmt.Sprint("report-", time.Now().UnixNano())
	if _, err := engine.StartRun(ctx, pool, "example-fork-report", "2024-05", &saga.StartOpts{RunID: id}); err != nil {
		panic(err)
	}
	failed, err := engine.Await(waitCtx, id)
	if err != nil {
		panic(err)
	}
	fmt.Println("original:", failed.Status)

	printerFixed.Store(true)
	// Position 2 is the mail step: render (position 1) replays.
	fork, err := engine.Fork(ctx, pool, id, 2, &saga.ForkOpts{RunID: id + "-retry"})
	if err != nil {
		panic(err)
	}
	done, err := engine.Await(waitCtx, fork.ID)
	if err != nil {
		panic(err)
	}
	out, err := saga.Result[string](done)
	fmt.Println("fork:", done.Status, out, err)
	fmt.Println("forked from the original:", done.ForkedFrom == id, "at", done.ForkedAtSeq)
	fmt.Println("render ran", rendered.Load(), "time")
	// Output:
	// original: failed
	// fork: succeeded mailed report-2024-05.pdf <nil>
	// forked from the original: true at 2
	// render ran 1 time
}

// A process that executes no workflow — an operator's tool, keel's console —
// forks a run too: the fork keeps the source's version and runs in the
// processes that register it.
func ExampleEngine_Fork_operator() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	var fixed atomic.Bool
	reg := saga.NewRegistry()
	saga.Register(reg, "example-fork-invoice", 1, func(ctx saga.Context, customer string) (string, error) {
		return saga.Step(ctx, "bill", func(context.Context) (string, error) {
			if !fixed.Load() {
				return "", errors.New("tax service down")
			}
			return "billed " + customer, nil
		}, &saga.StepOpts{MaxAttempts: 1})
	})
	worker, err := saga.NewEngine(pool, reg, saga.Config{
		Queue: "example-fork-operator",
		Jobs:  jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := worker.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = worker.Stop(ctx) }()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	id := fmt.Sprint("invoice-", time.Now().UnixNano())
	if _, err := worker.StartRun(ctx, pool, "example-fork-invoice", "acme", &saga.StartOpts{RunID: id}); err != nil {
		panic(err)
	}
	failed, err := worker.Await(waitCtx, id)
	if err != nil {
		panic(err)
	}
	fmt.Println("original:", failed.Status)

	fixed.Store(true)
	// The operator's engine registers nothing and is never started.
	operator, err := saga.NewEngine(pool, saga.NewRegistry(), saga.Config{})
	if err != nil {
		panic(err)
	}
	fork, err := operator.Fork(ctx, pool, id, 1, nil)
	if err != nil {
		panic(err)
	}
	done, err := worker.Await(waitCtx, fork.ID)
	if err != nil {
		panic(err)
	}
	out, err := saga.Result[string](done)
	fmt.Println("fork:", done.Status, "version", done.Version, out, err)
	// Output:
	// original: failed
	// fork: succeeded version 1 billed acme <nil>
}
