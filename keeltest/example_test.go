package keeltest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltest"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// printTB stands in for the *testing.T a real test passes: it prints what
// an assertion reports.
type printTB struct{ testing.TB }

func (printTB) Helper()                           {}
func (printTB) Errorf(format string, args ...any) { fmt.Printf("FAIL: "+format+"\n", args...) }

func connect() *pgxpool.Pool {
	pool, err := pgxpool.New(context.Background(), os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	return pool
}

type WelcomeArgs struct {
	Email string `json:"email"`
}

func (WelcomeArgs) Kind() string { return "keeltest_example_welcome" }

// Assert, inside the transaction under test, that it inserted a job.
func ExampleJobInserted() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	client, _ := jobs.NewClient(pool, jobs.Config{}) // insert-only

	_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The code under test:
		_, err := client.Insert(ctx, tx, WelcomeArgs{Email: "ada@example.com"}, nil)
		// The test (t instead of printTB{}):
		job := keeltest.JobInserted(ctx, printTB{}, client, tx, WelcomeArgs{Email: "ada@example.com"})
		fmt.Println(job.Kind, job.State)
		keeltest.JobInserted(ctx, printTB{}, client, tx, WelcomeArgs{Email: "bob@example.com"})
		return errors.Join(err, errors.New("roll back"))
	})
	// Output:
	// keeltest_example_welcome available
	// FAIL: keeltest: no job of kind "keeltest_example_welcome" with args {"email":"bob@example.com"}; jobs of that kind: [{"email": "ada@example.com"}]
}

// Assert that a transaction enqueued an outbox message.
func ExampleOutboxEnqueued() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		panic(err)
	}
	defer box.Close()

	_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := box.Enqueue(ctx, tx, outbox.Message{Topic: "example-orders", Key: "order-7", Type: "OrderPlaced", Payload: []byte(`{"id":7}`)})
		m := keeltest.OutboxEnqueued(ctx, printTB{}, tx, keeltest.Message{Topic: "example-orders", Key: "order-7", Payload: []byte(`{"id": 7}`)})
		fmt.Println(m.Type, m.Key)
		return errors.Join(err, errors.New("roll back"))
	})
	// Output: OrderPlaced order-7
}

// Assert that a transaction appended an event to a stream.
func ExampleEventAppended() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	store, _ := events.NewStore(pool, events.Config{})
	defer store.Close()

	_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		e, _ := events.NewEvent("OrderPlaced", map[string]int{"id": 7})
		_, err := store.Append(ctx, tx, "exampleorder-7", events.NoStream, e)
		got := keeltest.EventAppended(ctx, printTB{}, store, tx, "exampleorder-7", "OrderPlaced")
		fmt.Println(got.StreamID, got.Version, string(got.Data))
		return errors.Join(err, errors.New("roll back"))
	})
	// Output: exampleorder-7 1 {"id": 7}
}

type ReceiptArgs struct {
	Email string `json:"email"`
}

func (ReceiptArgs) Kind() string { return "keeltest_example_receipt" }

// Run one job handler to its end against a test database.
func ExampleRunJob() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := connect()
	defer pool.Close()

	row, err := keeltest.RunJob(ctx, pool, func(_ context.Context, job *jobs.Job[ReceiptArgs]) error {
		fmt.Println("sending to", job.Args.Email)
		return nil
	}, ReceiptArgs{Email: "ada@example.com"})
	if err != nil {
		panic(err)
	}
	fmt.Println(row.State, "after attempt", row.Attempt)
	// Output:
	// sending to ada@example.com
	// completed after attempt 1
}

// Run one workflow to its end against a test database.
func ExampleRunWorkflow() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := connect()
	defer pool.Close()

	run, err := keeltest.RunWorkflow(ctx, pool, "example-double", func(wc saga.Context, n int) (int, error) {
		return saga.Step(wc, "double", func(context.Context) (int, error) { return 2 * n, nil }, nil)
	}, 21)
	if err != nil {
		panic(err)
	}
	out, err := saga.Result[int](run)
	fmt.Println(run.Status, out, err)
	// Output: succeeded 42 <nil>
}
