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

// Cancel stops a run from any process: a waiting run is woken, a running
// one stops before its next step, and either runs the compensations of its
// completed steps and ends cancelled.
func ExampleEngine_Cancel() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	reg := saga.NewRegistry()
	saga.Register(reg, "example-cancel-checkout", 1, func(ctx saga.Context, order string) (string, error) {
		if _, err := saga.StepWithCompensation(ctx, "reserve-stock",
			func(context.Context) (string, error) { return "stock for " + order, nil },
			func(_ context.Context, stock string) error { fmt.Println("released", stock); return nil }, nil); err != nil {
			return "", err
		}
		// Wait up to a day for the payment.
		paid, err := saga.AwaitSignal[string](ctx, "payment", 24*time.Hour)
		if err != nil {
			return "", err
		}
		return order + " paid by " + paid, nil
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue: "example-cancel",
		Jobs:  jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	run, err := engine.StartRun(ctx, pool, "example-cancel-checkout", "order-31", &saga.StartOpts{RunID: fmt.Sprint("checkout-", time.Now().UnixNano())})
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

	// The customer abandons the checkout.
	if err := engine.Cancel(ctx, pool, run.ID); err != nil {
		panic(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, err := engine.Await(waitCtx, run.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(done.Status, errors.Is(done.Err(), saga.ErrCancelled))
	// Output:
	// waiting for a signal payment
	// released stock for order-31
	// cancelled true
}
