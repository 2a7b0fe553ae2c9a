package keel_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testbouncer"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/listener"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

type bouncedArgs struct{ N int }

func (bouncedArgs) Kind() string { return "bounced" }

// Through PgBouncer in transaction mode, with pgx's exec query mode and the
// LISTEN connection on a direct pool as the README says, jobs run, messages
// are relayed, events reach a subscription and saga runs finish — writes
// made in one transaction of the caller's, through the bouncer.
func TestPgBouncer(t *testing.T) {
	t.Parallel()
	direct := testdb.NewURL(t)
	directPool := testdb.Open(t, direct)
	pool := testdb.Open(t, testbouncer.New(t, direct))
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	listener := listener.New(directPool, nil)
	const n = 50
	poll := 100 * time.Millisecond

	var ran atomic.Int64
	w := jobs.NewWorkers()
	jobs.AddWorker(w, func(context.Context, *jobs.Job[bouncedArgs]) error { ran.Add(1); return nil }, nil)
	client, err := jobs.NewClient(pool, jobs.Config{Workers: w, Listener: listener, FetchPollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(box.Close)
	var published atomic.Int64
	relay, err := outbox.NewRelay(pool, outbox.PublisherFunc(func(context.Context, outbox.Delivery) error {
		published.Add(1)
		return nil
	}), outbox.RelayConfig{Listener: listener, PollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	running.Go(func() { _ = relay.Run(ctx) })

	store, err := events.NewStore(pool, events.Config{Listener: listener})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	var handled atomic.Int64
	sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "bounced", PollInterval: poll,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { handled.Add(1); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	running.Go(func() { _ = sub.Run(ctx) })

	reg := saga.NewRegistry()
	saga.Register(reg, "double", 1, func(ctx saga.Context, in int) (int, error) {
		return saga.Step(ctx, "double", func(context.Context) (int, error) { return 2 * in, nil }, nil)
	})
	// The engine works jobs' default queue too, so it gets the application's
	// workers (saga.Config.Jobs).
	engine, err := saga.NewEngine(pool, reg, saga.Config{AwaitPollInterval: poll, Jobs: jobs.Config{Workers: w, Listener: listener, FetchPollInterval: poll}})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Stop(context.Background()) })

	for i := range n {
		bouncedWork(ctx, t, pool, client, box, store, engine, i)
	}
	for i := range n {
		run, err := engine.Await(ctx, fmt.Sprintf("bounced-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := saga.Result[int](run); err != nil || out != 2*i {
			t.Fatalf("run %d: %d, %v", i, out, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for ran.Load() < n || published.Load() < n || handled.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: %d jobs ran, %d messages published, %d events handled, of %d", ran.Load(), published.Load(), handled.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bouncedWork inserts a job, enqueues a message, appends an event and starts
// a saga run in one transaction.
func bouncedWork(ctx context.Context, t *testing.T, pool *pgxpool.Pool, client *jobs.Client, box *outbox.Outbox, store *events.Store, engine *saga.Engine, i int) {
	t.Helper()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := client.Insert(ctx, tx, bouncedArgs{N: i}, nil); err != nil {
			return err
		}
		if _, err := box.Enqueue(ctx, tx, outbox.Message{Topic: "t", Key: fmt.Sprintf("k%d", i%5), Payload: []byte("x")}); err != nil {
			return err
		}
		e, err := events.NewEvent("Bounced", map[string]int{"n": i})
		if err != nil {
			return err
		}
		if _, err := store.Append(ctx, tx, fmt.Sprintf("bounced-%d", i%7), events.Any, e); err != nil {
			return err
		}
		_, err = engine.StartRun(ctx, tx, "double", i, &saga.StartOpts{RunID: fmt.Sprintf("bounced-%d", i)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
