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
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/saga"
)

// A step whose retry waits longer than Config.StepParkAfter parks the run
// between its attempts: the step is recorded waiting with its attempts so
// far, no worker is held, and the run goes on with the next attempt at the
// retry time — in any process, after a restart too.
func ExampleStepOpts() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	var calls atomic.Int64
	reg := saga.NewRegistry()
	saga.Register(reg, "example-retry-charge", 1, func(ctx saga.Context, order string) (string, error) {
		return saga.Step(ctx, "charge", func(context.Context) (string, error) {
			if calls.Add(1) == 1 {
				return "", errors.New("payment provider unavailable")
			}
			return "charged " + order, nil
		}, &saga.StepOpts{
			MaxAttempts: 5,
			// Minutes in a real service; anything over StepParkAfter parks.
			RetryPolicy: keeltype.RetryPolicyFunc(func(int, error) time.Duration { return time.Second }),
		})
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue:         "example-retry",
		StepParkAfter: 200 * time.Millisecond,
		Jobs:          jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	run, err := engine.StartRun(ctx, pool, "example-retry-charge", "order-7", &saga.StartOpts{RunID: fmt.Sprint("charge-", time.Now().UnixNano())})
	if err != nil {
		panic(err)
	}
	for deadline := time.Now().Add(30 * time.Second); run.Status != saga.StatusWaiting && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if run, err = engine.Get(ctx, pool, run.ID); err != nil {
			panic(err)
		}
	}
	fmt.Println(run.Status, "for a", run.WaitReason)
	steps, _ := engine.Steps(ctx, run.ID)
	fmt.Println(steps[0].Name, steps[0].Status, "after", steps[0].Attempts, "attempt:", steps[0].Error)

	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, err := engine.Await(waitCtx, run.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(saga.Result[string](done))
	steps, _ = engine.Steps(ctx, run.ID)
	fmt.Println(steps[0].Name, steps[0].Status, "after", steps[0].Attempts, "attempts")
	// Output:
	// waiting for a retry charge
	// charge waiting after 1 attempt: payment provider unavailable
	// charged order-7 <nil>
	// charge completed after 2 attempts
}
