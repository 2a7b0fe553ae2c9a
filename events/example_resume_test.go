package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/keeltype"
)

// A subscription whose handler keeps failing on an event parks after
// MaxAttempts: it stops there, never skipping the event, and its status
// says why. Once the cause is fixed, SubscriptionResume starts it again
// from that event.
func ExampleStore_SubscriptionResume() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	for _, t := range []string{"ParcelRegistered", "ParcelShipped"} {
		e, _ := events.NewEvent(t, map[string]string{"parcel": "parcel-9"})
		if _, err := store.Append(ctx, pool, "parcel-9", events.Any, e); err != nil {
			panic(err)
		}
	}

	const name = "example-parcel-labels"
	var printerOffline atomic.Bool
	printerOffline.Store(true)
	handled := make(chan string, 2)
	sub, err := store.NewSubscription(events.SubscriptionConfig{
		Name:     name,
		Category: "parcel",
		Handler: func(ctx context.Context, tx pgx.Tx, e events.RecordedEvent) error {
			if printerOffline.Load() {
				return errors.New("label printer offline")
			}
			handled <- e.Type
			return nil
		},
		PollInterval: 50 * time.Millisecond,
		MaxAttempts:  3,
		RetryPolicy:  keeltype.ExponentialBackoff{Initial: 10 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	if err := sub.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = sub.Stop(ctx) }()

	var status events.SubscriptionInfo
	for deadline := time.Now().Add(30 * time.Second); !status.Parked && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		status, _ = store.SubscriptionGet(ctx, name)
	}
	fmt.Printf("parked: %t after %d attempts: %s\n", status.Parked, status.Attempts, status.LastError)

	printerOffline.Store(false) // the printer is back
	if err := store.SubscriptionResume(ctx, name); err != nil {
		panic(err)
	}
	for range 2 {
		select {
		case t := <-handled:
			fmt.Println("handled", t)
		case <-time.After(30 * time.Second):
			fmt.Println("timed out")
			return
		}
	}
	// Output:
	// parked: true after 3 attempts: label printer offline
	// handled ParcelRegistered
	// handled ParcelShipped
}
