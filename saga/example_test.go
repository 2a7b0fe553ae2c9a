package saga_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/saga"
)

// A three-step workflow with a compensable step, started in a transaction
// and awaited.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	reg := saga.NewRegistry()
	saga.Register(reg, "example-greeting", 1, func(ctx saga.Context, name string) (string, error) {
		greeting, err := saga.StepWithCompensation(ctx, "compose",
			func(context.Context) (string, error) { return "hello, " + name, nil },
			func(context.Context, string) error { return nil }, nil)
		if err != nil {
			return "", err
		}
		if err := saga.SetValue(ctx, "stage", "composed"); err != nil {
			return "", err
		}
		return saga.Step(ctx, "sign", func(context.Context) (string, error) { return greeting + "!", nil }, nil)
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	tx, err := pool.Begin(ctx)
	if err != nil {
		panic(err)
	}
	// … the application's own writes in tx …
	run, err := engine.StartRun(ctx, tx, "example-greeting", "world", &saga.StartOpts{RunID: fmt.Sprint("greeting-", time.Now().UnixNano())})
	if err != nil {
		panic(err)
	}
	if err := tx.Commit(ctx); err != nil {
		panic(err)
	}

	done, err := engine.Await(ctx, run.ID)
	if err != nil {
		panic(err)
	}
	out, err := saga.Result[string](done)
	fmt.Println(out, err)
	steps, _ := engine.Steps(ctx, run.ID)
	for _, s := range steps {
		fmt.Println(s.Seq, s.Kind, s.Name, s.Status)
	}
	// Output:
	// hello, world! <nil>
	// 1 step compose completed
	// 2 value stage completed
	// 3 step sign completed
}

// A human in the loop: the run parks until a signal comes, holding no
// worker, and publishes its stage meanwhile.
func ExampleAwaitSignal() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	reg := saga.NewRegistry()
	saga.Register(reg, "example-expense", 1, func(ctx saga.Context, amount int) (string, error) {
		if err := saga.SetValue(ctx, "stage", "awaiting approval"); err != nil {
			return "", err
		}
		approver, err := saga.AwaitSignal[string](ctx, "approved-by", 24*time.Hour)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d approved by %s", amount, approver), nil
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	run, err := engine.StartRun(ctx, pool, "example-expense", 120, &saga.StartOpts{RunID: fmt.Sprint("expense-", time.Now().UnixNano())})
	if err != nil {
		panic(err)
	}
	for {
		var stage string
		if err := engine.GetValue(ctx, run.ID, "stage", &stage); err == nil {
			fmt.Println(stage)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// From an HTTP handler, in the handler's own transaction; the key makes
	// a retried request harmless.
	if err := engine.Signal(ctx, pool, run.ID, "approved-by", "ann", &saga.SignalOpts{IdempotencyKey: "request-7"}); err != nil {
		panic(err)
	}
	done, err := engine.Await(ctx, run.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(saga.Result[string](done))
	// Output:
	// awaiting approval
	// 120 approved by ann <nil>
}
