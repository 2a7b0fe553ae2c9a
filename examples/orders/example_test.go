package orders_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/examples/orders"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// One transaction across all four features: the application's row, an
// event, an outbox message, a job and a workflow start commit together, or
// (as here, the second time) roll back together.
func Example_oneTransaction() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	if err := orders.Migrate(ctx, pool); err != nil { // the app's own table
		panic(err)
	}

	reg := saga.NewRegistry()
	saga.Register(reg, "example-fulfil", 1, func(ctx saga.Context, id int64) (string, error) {
		return saga.Step(ctx, "ship", func(context.Context) (string, error) { return fmt.Sprint("parcel-", id), nil }, nil)
	})
	workers := jobs.NewWorkers() // the app's own job kinds, worked with the workflows
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[orders.ConfirmationEmail]) error { return nil }, nil)
	k, err := keel.New(pool, keel.Config{Jobs: jobs.Config{Workers: workers}, Workflows: reg})
	if err != nil {
		panic(err)
	}

	place := func(customer string) (int64, error) {
		var id int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `INSERT INTO orders (customer, email, items, total_cents)
				VALUES ($1, $2, '[]', 4200) RETURNING id`, customer, customer+"@example.com").Scan(&id)
			if err != nil {
				return err
			}
			stream := fmt.Sprint("exampleorder-", id)
			placed, _ := events.NewEvent("OrderPlaced", map[string]any{"id": id})
			if _, err := k.Events().Append(ctx, tx, stream, events.NoStream, placed); err != nil {
				return err
			}
			if _, err := k.Outbox().Enqueue(ctx, tx, outbox.Message{Topic: "orders", Key: stream, Type: "OrderPlaced", Payload: []byte(fmt.Sprintf(`{"id":%d}`, id))}); err != nil {
				return err
			}
			if _, err := k.Jobs().Insert(ctx, tx, orders.ConfirmationEmail{OrderID: id, Email: customer + "@example.com"}, nil); err != nil {
				return err
			}
			if _, err := k.Saga().StartRun(ctx, tx, "example-fulfil", id, &saga.StartOpts{RunID: stream}); err != nil {
				return err
			}
			if customer == "mallory" {
				return fmt.Errorf("order %d refused after all its writes", id)
			}
			return nil
		})
		return id, err
	}
	for _, customer := range []string{"grace", "mallory"} {
		id, err := place(customer)
		stream := fmt.Sprint("exampleorder-", id)
		var rows int
		_ = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders WHERE id = $1)
			+ (SELECT count(*) FROM keel.events WHERE stream_id = $2)
			+ (SELECT count(*) FROM keel.outbox WHERE key = $2)
			+ (SELECT count(*) FROM keel.jobs WHERE kind = $3 AND (args->>'order_id')::bigint = $1)
			+ (SELECT count(*) FROM keel.saga_runs WHERE id = $2)`, id, stream, orders.ConfirmationEmail{}.Kind()).Scan(&rows)
		fmt.Printf("%s: error %v; rows written: %d of 5\n", customer, err, rows)
	}

	// Committed, the workflow runs.
	if err := k.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = k.Stop(ctx) }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	runs, _ := k.Saga().List(ctx, &saga.ListParams{Workflow: "example-fulfil"})
	for _, r := range runs {
		done, err := k.Saga().Await(ctx, r.ID)
		if err != nil {
			panic(err)
		}
		out, err := saga.Result[string](done)
		fmt.Println(done.ID, done.Status, out, err)
	}
	// Output:
	// grace: error <nil>; rows written: 5 of 5
	// mallory: error order 2 refused after all its writes; rows written: 0 of 5
	// exampleorder-1 succeeded parcel-1 <nil>
}
