package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testcluster"
)

// While a subscription projects events, the server goes away for 3s, for
// 30s, or restarts. Afterwards the read model holds every event exactly
// once, in order: the handler's writes and the checkpoint share a
// transaction, so a batch cut off by the outage is handled again whole.
func TestSubscriptionOutage(t *testing.T) {
	t.Parallel()
	for _, tt := range testcluster.Outages() {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			const streams, perStream = 30, 100
			ctx := context.Background()
			cluster := testcluster.New(t)
			pool, err := pgxpool.New(ctx, cluster.URL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			createReadModelIn(ctx, t, pool)
			store := newStore(t, pool, events.Config{})
			for s := range streams {
				evs := make([]events.EventData, perStream)
				for i := range evs {
					evs[i] = ev("E", i)
				}
				appendTx(ctx, t, store, pool, fmt.Sprintf("s-%d", s), events.NoStream, evs...)
			}
			runSub(t, store, events.SubscriptionConfig{
				Name: "outage", BatchSize: 20, PollInterval: 50 * time.Millisecond,
				Handler: func(ctx context.Context, tx pgx.Tx, e events.RecordedEvent) error {
					time.Sleep(200 * time.Microsecond)
					return project(ctx, tx, e)
				},
			})
			seen := func() int {
				var n int
				if err := pool.QueryRow(ctx, countSeen).Scan(&n); err != nil {
					return -1
				}
				return n
			}
			eventually(t, time.Minute, "a third handled", func() (bool, error) { return seen() >= streams*perStream/3, nil })
			if seen() == streams*perStream {
				t.Fatal("every event was handled before the outage")
			}
			tt.Cause(cluster)
			back := time.Now()
			eventually(t, 2*time.Minute, "every event handled", func() (bool, error) { return seen() == streams*perStream, nil })
			t.Logf("all %d events handled %s after the server was back", streams*perStream, time.Since(back).Round(time.Millisecond))
			var gaps int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM public.seen WHERE position NOT BETWEEN 1 AND $1", streams*perStream).Scan(&gaps); err != nil || gaps != 0 {
				t.Fatalf("%d handled positions outside 1..%d (%v)", gaps, streams*perStream, err)
			}
		})
	}
}
