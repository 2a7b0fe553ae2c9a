package saga_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// A parent run starts child runs and waits for them: the children run in
// parallel, as runs of their own, while the parent is parked holding no
// worker. Starting a child is checkpointed, so a replay never starts it
// twice.
func ExampleStartChild() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	reg := saga.NewRegistry()
	saga.Register(reg, "example-child-pack", 1, func(ctx saga.Context, item string) (string, error) {
		return saga.Step(ctx, "pack", func(context.Context) (string, error) { return "box of " + item, nil }, nil)
	})
	saga.Register(reg, "example-child-order", 1, func(ctx saga.Context, items []string) (string, error) {
		var children []*saga.Child[string]
		for _, item := range items {
			children = append(children, saga.StartChild[string](ctx, "example-child-pack", item, nil))
		}
		var boxes []string
		for _, c := range children {
			box, err := c.Get(ctx)
			if err != nil {
				return "", err
			}
			boxes = append(boxes, box)
		}
		return strings.Join(boxes, ", "), nil
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue: "example-child",
		Jobs:  jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	run, err := engine.StartRun(ctx, pool, "example-child-order", []string{"tea", "cups"},
		&saga.StartOpts{RunID: fmt.Sprint("order-", time.Now().UnixNano())})
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
	children, _ := engine.List(ctx, &saga.ListParams{ParentID: run.ID})
	for _, c := range children {
		fmt.Println("child", c.Workflow, c.Status)
	}
	// Output:
	// box of tea, box of cups <nil>
	// child example-child-pack succeeded
	// child example-child-pack succeeded
}
