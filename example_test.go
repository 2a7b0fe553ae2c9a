package keel_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

type welcomeArgs struct {
	Customer string `json:"customer"`
}

func (welcomeArgs) Kind() string { return "welcome_email" }

// A service running all four features on one Client, over a pool with
// pgxpool's default config: one transaction appends an event, enqueues an
// outbox message, inserts a job and starts a workflow run; the job's
// worker, the relay, a subscription and the saga engine each act on it, and
// the service shuts down cleanly.
func Example() {
	ctx := context.Background()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		fmt.Println("set DATABASE_URL")
		return
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	var mu sync.Mutex
	var seen []string
	saw := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, s)
	}

	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(_ context.Context, job *jobs.Job[welcomeArgs]) error {
		saw("job: welcome " + job.Args.Customer)
		return nil
	}, nil)
	registry := saga.NewRegistry()
	saga.Register(registry, "onboarding", 1, func(wc saga.Context, customer string) (string, error) {
		return saga.Step(wc, "create-account", func(context.Context) (string, error) {
			return "account of " + customer, nil
		}, nil)
	})

	k, err := keel.New(pool, keel.Config{
		Jobs:      jobs.Config{Workers: workers},
		Workflows: registry,
		Publisher: outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
			saw("relay: published " + d.Type)
			return nil
		}),
		Subscriptions: []events.SubscriptionConfig{{
			Name: "example-service",
			Handler: func(_ context.Context, _ pgx.Tx, ev events.RecordedEvent) error {
				saw("subscription: " + ev.Type)
				return nil
			},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := k.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}

	customer := fmt.Sprint("customer-", time.Now().UnixNano())
	tx, err := pool.Begin(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	signedUp, err := events.NewEvent("SignedUp", map[string]string{"customer": customer})
	if err == nil {
		_, err = k.Events().Append(ctx, tx, customer, events.NoStream, signedUp)
	}
	if err == nil {
		_, err = k.Outbox().Enqueue(ctx, tx, outbox.Message{Topic: "customers", Key: customer, Type: "customer.signed_up", Payload: []byte(`{}`)})
	}
	if err == nil {
		_, err = k.Jobs().Insert(ctx, tx, welcomeArgs{Customer: "ada"}, nil)
	}
	var run *saga.Run
	if err == nil {
		run, err = k.Saga().StartRun(ctx, tx, "onboarding", "ada", nil)
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		_ = tx.Rollback(ctx)
		fmt.Println(err)
		return
	}

	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, err := k.Saga().Await(waitCtx, run.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	output, err := saga.Result[string](done)
	if err != nil {
		fmt.Println(err)
		return
	}
	saw("saga: " + output)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 4 || waitCtx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Stop before the pool closes (defers run last in, first out).
	if err := k.Stop(ctx); err != nil {
		fmt.Println(err)
		return
	}
	slices.Sort(seen)
	for _, s := range seen {
		fmt.Println(s)
	}
	// Output:
	// job: welcome ada
	// relay: published customer.signed_up
	// saga: account of ada
	// subscription: SignedUp
}
