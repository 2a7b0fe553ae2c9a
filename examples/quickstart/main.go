// Command quickstart is keel's README quick start: one keel.Client runs a
// job worker, a workflow, an outbox relay and an event subscription on a
// pool with pgxpool's default config; one transaction feeds all four; the
// program waits for each to act and shuts down cleanly.
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/migrations"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// WelcomeArgs is a job: its JSON is the job's args, Kind names its worker.
type WelcomeArgs struct {
	Email string `json:"email"`
}

func (WelcomeArgs) Kind() string { return "welcome_email" }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return errors.New("set DATABASE_URL to a PostgreSQL connection string")
	}
	pool, err := pgxpool.New(ctx, url) // pgxpool's defaults are enough
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil { // keel's schema, once per deploy
		return err
	}

	done := make(chan string, 4)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[WelcomeArgs]) error {
		done <- "job: welcome mail to " + job.Args.Email
		return nil
	}, nil)
	registry := saga.NewRegistry()
	saga.Register(registry, "onboard", 1, func(wc saga.Context, email string) (string, error) {
		return saga.Step(wc, "create-account", func(ctx context.Context) (string, error) {
			return "account for " + email, nil
		}, nil)
	})
	k, err := keel.New(pool, keel.Config{
		Jobs:      jobs.Config{Workers: workers},
		Workflows: registry,
		Publisher: outbox.PublisherFunc(func(ctx context.Context, d outbox.Delivery) error {
			done <- "relay: published " + d.Type // send to Kafka, NATS, a webhook …
			return nil
		}),
		Subscriptions: []events.SubscriptionConfig{{
			Name: "quickstart-signups",
			Handler: func(ctx context.Context, tx pgx.Tx, e events.RecordedEvent) error {
				done <- "subscription: " + e.Type // update a read model in tx
				return nil
			},
		}},
	})
	if err != nil {
		return err
	}
	if err := k.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := k.Stop(stopCtx); err != nil { // before pool.Close
			fmt.Fprintln(os.Stderr, "quickstart: stop:", err)
		}
	}()

	// One transaction: an event, an outbox message, a job and a workflow
	// run commit together, or none of them does.
	email := fmt.Sprintf("ada+%d@example.com", time.Now().UnixNano())
	var run *saga.Run
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		signedUp, err := events.NewEvent("SignedUp", map[string]string{"email": email})
		if err != nil {
			return err
		}
		if _, err := k.Events().Append(ctx, tx, "user-"+email, events.NoStream, signedUp); err != nil {
			return err
		}
		msg := outbox.Message{Topic: "users", Key: email, Type: "user.signed_up", Payload: []byte(`{}`)}
		if _, err := k.Outbox().Enqueue(ctx, tx, msg); err != nil {
			return err
		}
		if _, err := k.Jobs().Insert(ctx, tx, WelcomeArgs{Email: email}, nil); err != nil {
			return err
		}
		run, err = k.Saga().StartRun(ctx, tx, "onboard", email, nil)
		return err
	})
	if err != nil {
		return err
	}

	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	finished, err := k.Saga().Await(waitCtx, run.ID)
	if err != nil {
		return err
	}
	account, err := saga.Result[string](finished)
	if err != nil {
		return err
	}
	fmt.Println("saga:", account)
	for range 3 {
		select {
		case line := <-done:
			fmt.Println(line)
		case <-waitCtx.Done():
			return waitCtx.Err()
		}
	}
	return nil
}
