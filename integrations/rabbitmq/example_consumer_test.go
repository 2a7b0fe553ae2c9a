package keelrabbit_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	keelrabbit "github.com/keelpg/keel/integrations/rabbitmq"
	"github.com/keelpg/keel/outbox"
)

// A Consumer makes each message's effect once, in the transaction in which
// the inbox records the message, and acks it after the commit: a message
// that comes twice is charged once.
func ExampleConsumer() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS example_rabbit_charges (payment text PRIMARY KEY, amount int NOT NULL)`); err != nil {
		fmt.Println(err)
		return
	}
	url := cmp.Or(os.Getenv("RABBITMQ_URL"), "amqp://guest:guest@127.0.0.1:5672/")
	conn, err := amqp.Dial(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		fmt.Println(err)
		return
	}
	const queue = "example-keel-payments"
	_, _ = ch.QueueDelete(queue, false, false, false) // start empty
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _, _ = ch.QueueDelete(queue, false, false, false) }()

	// The same message twice, as a publisher whose confirm was lost sends it.
	for range 2 {
		err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
			MessageId: "payment-7", DeliveryMode: amqp.Persistent, Body: []byte("1250"),
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}

	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	consumer, err := keelrabbit.NewConsumer(inbox, func(ctx context.Context, tx pgx.Tx, m keelrabbit.Message) error {
		fmt.Printf("charging %s: %s\n", m.ID, m.Payload)
		_, err := tx.Exec(ctx, `INSERT INTO example_rabbit_charges (payment, amount) VALUES ($1, $2)`, m.ID, string(m.Payload))
		return err
	}, keelrabbit.ConsumerConfig{URL: url, Queue: queue, Name: "billing"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := consumer.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	var charges int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM example_rabbit_charges`).Scan(&charges); err != nil {
			fmt.Println(err)
			return
		}
		if charges > 0 && q.Messages == 0 {
			break // charged, and the copy handed to the consumer
		}
	}
	if err := consumer.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("charges:", charges)
	// Output:
	// charging payment-7: 1250
	// charges: 1
}
