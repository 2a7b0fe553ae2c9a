package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// A message that fails its last attempt is dead: it stays in keel.outbox for
// a person to look at, and the later messages of its key go on. Once the
// cause is fixed, Requeue puts it back in line with fresh attempts.
func ExampleRequeue() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	const topic = "example-dead-letter-invoices"
	var broken atomic.Bool
	broken.Store(true)
	published := make(chan string, 2)
	pub := outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		if d.Topic != topic {
			return nil
		}
		if broken.Load() && d.Type == "InvoicePaid" {
			fmt.Printf("publish %s: attempt %d failed\n", d.Type, d.Attempt)
			return errors.New("410 Gone: endpoint moved")
		}
		fmt.Printf("published %s (attempt %d)\n", d.Type, d.Attempt)
		published <- d.Type
		return nil
	})
	relay, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{
		PollInterval: 50 * time.Millisecond,
		MaxAttempts:  3,
		RetryPolicy:  keeltype.ExponentialBackoff{Initial: 20 * time.Millisecond},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := relay.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = relay.Stop(ctx) }()
	waitFor := func(msgType string) {
		select {
		case t := <-published:
			if t != msgType {
				fmt.Println("unexpected", t)
			}
		case <-time.After(30 * time.Second):
			fmt.Println("timed out waiting for", msgType)
		}
	}

	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer box.Close()
	msgs := []outbox.Message{
		{Topic: topic, Key: "invoice-12", Type: "InvoicePaid", Payload: []byte(`{"invoice":12}`)},
		{Topic: topic, Key: "invoice-12", Type: "InvoiceArchived", Payload: []byte(`{"invoice":12}`)},
	}
	if _, err := box.Enqueue(ctx, pool, msgs...); err != nil { // through the pool: commits at once
		fmt.Println(err)
		return
	}
	waitFor("InvoiceArchived")

	// What an operator sees: select * from keel.outbox where state = 'dead'.
	var state, lastError string
	var attempts int
	err = pool.QueryRow(ctx, "SELECT state, attempts, last_error FROM keel.outbox WHERE id = $1", msgs[0].ID).
		Scan(&state, &attempts, &lastError)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("InvoicePaid is %s after %d attempts: %s\n", state, attempts, lastError)

	broken.Store(false) // the endpoint is fixed
	if err := outbox.Requeue(ctx, pool, msgs[0].ID); err != nil {
		fmt.Println(err)
		return
	}
	waitFor("InvoicePaid")
	err = outbox.Requeue(ctx, pool, msgs[0].ID)
	fmt.Println("requeue a delivered message:", errors.Is(err, outbox.ErrNotDead))
	// Output:
	// publish InvoicePaid: attempt 1 failed
	// publish InvoicePaid: attempt 2 failed
	// publish InvoicePaid: attempt 3 failed
	// published InvoiceArchived (attempt 1)
	// InvoicePaid is dead after 3 attempts: 410 Gone: endpoint moved
	// published InvoicePaid (attempt 1)
	// requeue a delivered message: true
}

// When a broker was down longer than the relay's retries, a whole topic's
// messages end dead. Once it is back, RequeueDead puts every dead message of
// the topic back in line at once (an empty topic: of every topic).
func ExampleRequeueDead() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	const topic = "example-requeue-dead-receipts"
	var brokerDown atomic.Bool
	brokerDown.Store(true)
	pub := outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		if d.Topic == topic && brokerDown.Load() {
			return errors.New("503 Service Unavailable")
		}
		return nil
	})
	relay, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{MaxAttempts: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer box.Close()
	msgs := []outbox.Message{
		{Topic: topic, Type: "ReceiptIssued", Payload: []byte(`{"receipt":1}`)},
		{Topic: topic, Type: "ReceiptIssued", Payload: []byte(`{"receipt":2}`)},
		{Topic: topic, Type: "ReceiptIssued", Payload: []byte(`{"receipt":3}`)},
	}
	if _, err := box.Enqueue(ctx, pool, msgs...); err != nil { // through the pool: commits at once
		fmt.Println(err)
		return
	}
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	// relayUntil runs the relay until the messages are all in state.
	relayUntil := func(state string) {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			var n int
			err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.outbox WHERE id = ANY($1) AND state = $2", ids, state).Scan(&n)
			if err != nil {
				fmt.Println(err)
				return
			}
			if n == len(ids) {
				fmt.Printf("%d messages %s\n", n, state)
				return
			}
			claimed, err := relay.RunOnce(ctx)
			if err != nil {
				fmt.Println(err)
				return
			}
			if claimed == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		fmt.Println("timed out waiting for", state)
	}
	relayUntil("dead")

	brokerDown.Store(false) // the broker is back
	n, err := outbox.RequeueDead(ctx, pool, topic)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("requeued:", n)
	relayUntil("delivered")
	// Output:
	// 3 messages dead
	// requeued: 3
	// 3 messages delivered
}
