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

// StepAsync runs steps in parallel (fan-out) and Get collects them (fan-in).
// Each step takes its place in the history when it is started, so a replay
// matches every step to its record whatever order they finished in.
func ExampleStepAsync() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	prices := map[string]int{"dhl": 12, "ups": 9, "fedex": 15}
	reg := saga.NewRegistry()
	saga.Register(reg, "example-parallel-quotes", 1, func(ctx saga.Context, parcel string) (string, error) {
		carriers := []string{"dhl", "ups", "fedex"}
		var quotes []*saga.Future[int]
		for _, c := range carriers {
			quotes = append(quotes, saga.StepAsync(ctx, "quote-"+c, func(context.Context) (int, error) {
				return prices[c], nil // a call to the carrier's API
			}, nil))
		}
		best := ""
		for i, q := range quotes {
			price, err := q.Get(ctx)
			if err != nil {
				return "", err
			}
			if best == "" || price < prices[best] {
				best = carriers[i]
			}
		}
		return fmt.Sprintf("%s ships %s for %d", best, parcel, prices[best]), nil
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue: "example-parallel",
		Jobs:  jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	run, err := engine.StartRun(ctx, pool, "example-parallel-quotes", "parcel-5", &saga.StartOpts{RunID: fmt.Sprint("quotes-", time.Now().UnixNano())})
	if err != nil {
		panic(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, err := engine.Await(waitCtx, run.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(saga.Result[string](done))
	steps, _ := engine.Steps(ctx, run.ID)
	for _, s := range steps {
		fmt.Println(s.Seq, s.Name, string(s.Output))
	}
	// Output:
	// ups ships parcel-5 for 9 <nil>
	// 1 quote-dhl 12
	// 2 quote-ups 9
	// 3 quote-fedex 15
}
