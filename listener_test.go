package keel_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// countListening counts this database's sessions whose last statement was a
// LISTEN: the connections Listeners hold.
const countListening = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"

type shareArgs struct{}

func (shareArgs) Kind() string { return "share" }

// A process that runs a jobs client, an outbox relay, an event subscription
// and a saga engine (with an Await waiting) on one keel.Listener holds one
// listening connection, and every poll interval is an hour, so the work below
// is picked up on notifications that connection receives.
func TestComponentsShareOneListener(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	// Registered after the pool, so it runs before the pool closes: the
	// relay and the subscription stop first.
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	listener := keel.NewListener(pool, nil)
	const never = time.Hour

	ran := make(chan struct{}, 100)
	w := jobs.NewWorkers()
	jobs.AddWorker(w, func(context.Context, *jobs.Job[shareArgs]) error { ran <- struct{}{}; return nil }, nil)
	client, err := jobs.NewClient(pool, jobs.Config{Workers: w, Listener: listener, FetchPollInterval: never})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	box := outbox.New(pool, outbox.Config{})
	t.Cleanup(box.Close)
	published := make(chan struct{}, 100)
	relay, err := outbox.NewRelay(pool, outbox.PublisherFunc(func(context.Context, outbox.Delivery) error {
		published <- struct{}{}
		return nil
	}), outbox.RelayConfig{Listener: listener, PollInterval: never})
	if err != nil {
		t.Fatal(err)
	}
	running.Go(func() { _ = relay.Run(ctx) })

	store, err := events.NewStore(pool, events.Config{Listener: listener})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	handled := make(chan struct{}, 100)
	sub, err := store.Subscription(events.SubscriptionConfig{Name: "shared", PollInterval: never,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { handled <- struct{}{}; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	running.Go(func() { _ = sub.Run(ctx) })

	reg := saga.NewRegistry()
	saga.Register(reg, "gate", 1, func(ctx saga.Context, in string) (string, error) {
		if _, err := saga.AwaitSignal[bool](ctx, "open", never); err != nil {
			return "", err
		}
		return in, nil
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{Jobs: jobs.Config{Listener: listener, FetchPollInterval: never}})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.StartWorkers(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Stop(context.Background()) })
	// A notification sent before a component's LISTEN is in place is lost,
	// so keep making work until every component has been woken for some.
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n := 0; len(ran) == 0 || len(published) == 0 || len(handled) == 0; n++ {
		select {
		case <-deadline:
			t.Fatalf("after 30s: %d jobs ran, %d messages published, %d events handled", len(ran), len(published), len(handled))
		case <-tick.C:
		}
		makeWork(ctx, t, pool, client, box, store, n)
	}
	var listening int
	if err := pool.QueryRow(ctx, countListening).Scan(&listening); err != nil {
		t.Fatal(err)
	}
	if listening != 1 {
		t.Errorf("the process holds %d listening connections, want 1", listening)
	}

	// The run starts once the shared LISTEN is known to be in place: its
	// engine polls never, so a lost start notification would leave it
	// unclaimed, and a signal to a run still queued sends none.
	if _, err := engine.Start(ctx, pool, "gate", "through", &saga.StartOpts{RunID: "gate-1"}); err != nil {
		t.Fatal(err)
	}
	awaited := make(chan error, 1)
	go func() {
		run, err := engine.Await(ctx, "gate-1")
		if err == nil {
			var out string
			if out, err = saga.Result[string](run); err == nil && out != "through" {
				t.Errorf("saga result %q, want through", out)
			}
		}
		awaited <- err
	}()
	if err := engine.Signal(ctx, pool, "gate-1", "open", true, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-awaited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the saga run did not finish within 30s of its signal")
	}
}

// makeWork inserts a job, enqueues a message and appends an event in one
// transaction.
func makeWork(ctx context.Context, t *testing.T, pool *pgxpool.Pool, client *jobs.Client, box *outbox.Outbox, store *events.Store, n int) {
	t.Helper()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := client.Insert(ctx, tx, shareArgs{}, nil); err != nil {
			return err
		}
		if _, err := box.Enqueue(ctx, tx, outbox.Message{Topic: "t", Payload: []byte("x")}); err != nil {
			return err
		}
		e, err := events.NewEvent("Made", map[string]int{"n": n})
		if err != nil {
			return err
		}
		_, err = store.Append(ctx, tx, "work-1", events.Any, e)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
