package saga_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// A durable timer: Sleep parks the run, holding no goroutine or worker, and
// a job scheduled for the wake time resumes it — in any process, after a
// restart too.
func ExampleSleep() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	reg := saga.NewRegistry()
	saga.Register(reg, "example-sleep-trial", 1, func(ctx saga.Context, user string) (string, error) {
		if _, err := saga.Step(ctx, "welcome", func(context.Context) (string, error) { return "welcomed " + user, nil }, nil); err != nil {
			return "", err
		}
		saga.Sleep(ctx, 300*time.Millisecond) // 14 days in a real trial
		return saga.Step(ctx, "trial-ended", func(context.Context) (string, error) { return "trial of " + user + " ended", nil }, nil)
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue: "example-sleep",
		Jobs:  jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	run, err := engine.StartRun(ctx, pool, "example-sleep-trial", "ada", &saga.StartOpts{RunID: fmt.Sprint("trial-", time.Now().UnixNano())})
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

	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, err := engine.Await(waitCtx, run.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(saga.Result[string](done))
	steps, _ := engine.Steps(ctx, run.ID)
	for _, s := range steps {
		fmt.Println(s.Seq, s.Kind, s.Name)
	}
	// Output:
	// waiting for a timer
	// trial of ada ended <nil>
	// 1 step welcome
	// 2 sleep sleep
	// 3 step trial-ended
}
