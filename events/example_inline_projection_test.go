package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/keeltype"
)

// An inline projection updates a read model in the appending transaction,
// so the model never lags the events, and a projection that refuses an
// event fails the append: the caller rolls back and neither is written.
func ExampleInlineProjection() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	// The read model: stock per warehouse item.
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS example_inline_stock (
		item text PRIMARY KEY, quantity int NOT NULL)`); err != nil {
		panic(err)
	}

	errOutOfStock := errors.New("out of stock")
	project := func(ctx context.Context, tx keeltype.DBTX, evs []events.RecordedEvent) error {
		for _, e := range evs {
			if e.Category() != "stockitem" {
				continue
			}
			var m struct{ Delta int }
			if err := e.Decode(&m); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO example_inline_stock VALUES ($1, 0) ON CONFLICT DO NOTHING`, e.StreamID); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `UPDATE example_inline_stock SET quantity = quantity + $2
				WHERE item = $1 AND quantity + $2 >= 0`, e.StreamID, m.Delta)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("%w: %s", errOutOfStock, e.StreamID)
			}
		}
		return nil
	}
	store, err := events.NewStore(pool, events.Config{InlineProjections: []events.InlineProjection{project}})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	const item = "stockitem-bolt-m6"
	move := func(delta int) error {
		e, _ := events.NewEvent("StockMoved", map[string]int{"delta": delta})
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := store.Append(ctx, tx, item, events.Any, e)
			return err // an error rolls back the events and the read model
		})
	}
	quantity := func() int {
		var q int
		_ = pool.QueryRow(ctx, "SELECT quantity FROM example_inline_stock WHERE item = $1", item).Scan(&q)
		return q
	}

	fmt.Println("receive 100:", move(100), "in stock:", quantity())
	fmt.Println("ship 30:", move(-30), "in stock:", quantity())
	err = move(-500)
	fmt.Println("ship 500: out of stock:", errors.Is(err, errOutOfStock), "in stock:", quantity())
	evs, _ := store.ReadStream(ctx, pool, item, nil)
	fmt.Println("events:", len(evs))
	// Output:
	// receive 100: <nil> in stock: 100
	// ship 30: <nil> in stock: 70
	// ship 500: out of stock: true in stock: 70
	// events: 2
}
