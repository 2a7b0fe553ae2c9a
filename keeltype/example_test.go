package keeltype_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
)

// The waits of a policy without jitter: doubling from Initial, capped at
// Max.
func ExampleExponentialBackoff() {
	p := keeltype.ExponentialBackoff{Initial: time.Second, Max: 5 * time.Second}
	for attempt := 1; attempt <= 4; attempt++ {
		fmt.Println(attempt, p.NextRetry(attempt, nil))
	}
	// Output:
	// 1 1s
	// 2 2s
	// 3 4s
	// 4 5s
}

// exampleArgs is the job the hook example runs.
type exampleArgs struct{}

func (exampleArgs) Kind() string { return "keeltype_example_hook" }

// printHook prints each operation as it ends. A metrics adapter counts
// and times them; a tracer starts a span in Start and ends it in end.
type printHook struct {
	keeltype.NoHook
	mu    sync.Mutex
	lines []string
}

func (h *printHook) Start(ctx context.Context, op keeltype.Operation) (context.Context, func(keeltype.Outcome)) {
	return ctx, func(o keeltype.Outcome) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.lines = append(h.lines, fmt.Sprintf("%s %s state=%q err=%v", op.Kind, op.Name, o.State, o.Err))
	}
}

// A Hook on a jobs client hears of the insert and of the attempt.
func ExampleHook() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	hook := &printHook{}
	ran := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[exampleArgs]) error { close(ran); return nil }, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers: workers, Hook: hook, FetchPollInterval: 50 * time.Millisecond,
		Queues: map[string]jobs.QueueConfig{"keeltype-example": {}},
	})
	if err != nil {
		panic(err)
	}
	if err := client.Start(ctx); err != nil {
		panic(err)
	}
	if _, err := client.Insert(ctx, pool, exampleArgs{}, &jobs.InsertOpts{Queue: "keeltype-example"}); err != nil {
		panic(err)
	}
	<-ran
	if err := client.Stop(ctx); err != nil {
		panic(err)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	// The insert's end and the run's race: the job may run before Insert
	// returns. Sorted, the lines print the same every time.
	slices.Sort(hook.lines)
	for _, line := range hook.lines {
		fmt.Println(line)
	}
	// Output:
	// jobs.insert keeltype_example_hook state="" err=<nil>
	// jobs.run keeltype_example_hook state="completed" err=<nil>
}
