package keelnats_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	keelnats "github.com/keelpg/keel/integrations/nats"
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
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS example_nats_charges (payment text PRIMARY KEY, amount int NOT NULL)`); err != nil {
		fmt.Println(err)
		return
	}
	nc, err := nats.Connect(cmp.Or(os.Getenv("NATS_URL"), nats.DefaultURL), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = js.DeleteStream(ctx, "EXAMPLE_KEEL_PAYMENTS") // start empty
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "EXAMPLE_KEEL_PAYMENTS", Subjects: []string{"example-keel-payments.>"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = js.DeleteStream(ctx, "EXAMPLE_KEEL_PAYMENTS") }()
	// A durable consumer with one message in flight: its name names the
	// inbox consumer, and per-key order holds through redeliveries.
	source, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The same message twice, as a publisher that retried after the dedup
	// window would send it.
	for range 2 {
		msg := nats.NewMsg("example-keel-payments.captured")
		msg.Header.Set(keelnats.HeaderMessageID, "payment-7")
		msg.Data = []byte("1250")
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			fmt.Println(err)
			return
		}
	}

	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	consumer, err := keelnats.NewConsumer(inbox, source, func(ctx context.Context, tx pgx.Tx, m keelnats.Message) error {
		fmt.Printf("charging %s: %s\n", m.ID, m.Payload)
		_, err := tx.Exec(ctx, `INSERT INTO example_nats_charges (payment, amount) VALUES ($1, $2)`, m.ID, string(m.Payload))
		return err
	}, keelnats.ConsumerConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := consumer.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if info, err := source.Info(ctx); err == nil && info.AckFloor.Stream == 2 {
			break // both deliveries acked
		}
	}
	if err := consumer.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	var charges int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM example_nats_charges`).Scan(&charges); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("charges:", charges)
	// Output:
	// charging payment-7: 1250
	// charges: 1
}
