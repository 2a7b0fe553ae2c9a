package events_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// A stream's category is the part of its id before the first '-'.
// ReadCategory reads the global feed restricted to one category: every
// invoice's events, in the order they were committed, and no refund's.
func ExampleStore_ReadCategory() {
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

	for _, a := range [][2]string{
		{"invoice-1001", "InvoiceIssued"},
		{"refund-77", "RefundRequested"},
		{"invoice-1002", "InvoiceIssued"},
		{"invoice-1001", "InvoicePaid"},
	} {
		e, _ := events.NewEvent(a[1], map[string]string{"id": a[0]})
		if _, err := store.Append(ctx, pool, a[0], events.Any, e); err != nil {
			panic(err)
		}
	}
	// Give the committed events their feed positions (a running store,
	// Store.Start, does this every SequencerInterval).
	if err := store.Sequence(ctx); err != nil {
		panic(err)
	}
	evs, err := store.ReadCategory(ctx, pool, "invoice", nil)
	if err != nil {
		panic(err)
	}
	for _, e := range evs {
		fmt.Println(e.StreamID, e.Version, e.Type)
	}
	// Output:
	// invoice-1001 1 InvoiceIssued
	// invoice-1002 1 InvoiceIssued
	// invoice-1001 2 InvoicePaid
}
