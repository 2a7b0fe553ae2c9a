package saga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// TxStep gives a step a transaction: its writes and its checkpoint commit
// together, so the effect happens exactly once however often the run is
// replayed. A failed attempt rolls its writes back.
func ExampleTxStep() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS example_txstep_ledger (
		run_id text NOT NULL, entry text NOT NULL, amount int NOT NULL)`); err != nil {
		panic(err)
	}

	var attempts atomic.Int32
	reg := saga.NewRegistry()
	saga.Register(reg, "example-txstep-payout", 1, func(wc saga.Context, amount int) (string, error) {
		return saga.TxStep(wc, "book-payout", func(ctx context.Context, tx pgx.Tx) (string, error) {
			n := attempts.Add(1)
			if _, err := tx.Exec(ctx, "INSERT INTO example_txstep_ledger VALUES ($1, 'payout', $2)", wc.RunID(), amount); err != nil {
				return "", err
			}
			if n == 1 {
				return "", errors.New("bank API timed out") // the insert above rolls back
			}
			return fmt.Sprintf("paid out %d", amount), nil
		}, nil)
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue: "example-txstep",
		Jobs:  jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := engine.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = engine.Stop(ctx) }()

	run, err := engine.StartRun(ctx, pool, "example-txstep-payout", 250, &saga.StartOpts{RunID: fmt.Sprint("payout-", time.Now().UnixNano())})
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
	var entries int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM example_txstep_ledger WHERE run_id = $1", run.ID).Scan(&entries); err != nil {
		panic(err)
	}
	fmt.Println("attempts:", attempts.Load(), "ledger entries:", entries)
	// Output:
	// paid out 250 <nil>
	// attempts: 2 ledger entries: 1
}
