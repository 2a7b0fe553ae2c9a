package saga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// A saga: when a later step fails, the compensations of the completed steps
// run in reverse order, each checkpointed, and the run ends failed.
func ExampleStepWithCompensation() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	noRetry := &saga.StepOpts{MaxAttempts: 1}
	reg := saga.NewRegistry()
	saga.Register(reg, "example-compensation-trip", 1, func(ctx saga.Context, traveller string) (string, error) {
		flight, err := saga.StepWithCompensation(ctx, "book-flight",
			func(context.Context) (string, error) { return "flight LH400", nil },
			func(_ context.Context, flight string) error { fmt.Println("cancel", flight); return nil }, nil)
		if err != nil {
			return "", err
		}
		hotel, err := saga.StepWithCompensation(ctx, "book-hotel",
			func(context.Context) (string, error) { return "hotel Adlon", nil },
			func(_ context.Context, hotel string) error { fmt.Println("cancel", hotel); return nil }, nil)
		if err != nil {
			return "", err
		}
		if _, err := saga.Step(ctx, "charge-card", func(context.Context) (string, error) {
			return "", errors.New("card declined")
		}, noRetry); err != nil {
			return "", err
		}
		return traveller + ": " + flight + ", " + hotel, nil
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue: "example-compensation",
		Jobs:  jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	run, err := engine.StartRun(ctx, pool, "example-compensation-trip", "ada", &saga.StartOpts{RunID: fmt.Sprint("trip-", time.Now().UnixNano())})
	if err != nil {
		panic(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, err := engine.Await(waitCtx, run.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("run", done.Status)
	steps, _ := engine.Steps(ctx, run.ID)
	for _, s := range steps {
		fmt.Println(s.Seq, s.Kind, s.Name, s.Status)
		if s.Error != "" {
			fmt.Println("  error:", s.Error)
		}
	}
	// Output:
	// cancel hotel Adlon
	// cancel flight LH400
	// run failed
	// -2 compensation book-hotel completed
	// -1 compensation book-flight completed
	// 1 step book-flight completed
	// 2 step book-hotel completed
	// 3 step charge-card failed
	//   error: card declined
}
