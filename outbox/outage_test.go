package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/hooktest"
	"github.com/keelpg/keel/internal/testcluster"
	"github.com/keelpg/keel/outbox"
)

// While a relay publishes keyed messages, the server goes away for 3s, for
// 30s, or restarts. Afterwards every message is delivered, first published
// in its key's order, and the hook heard of the outage.
func TestRelayOutage(t *testing.T) {
	t.Parallel()
	for _, tt := range testcluster.Outages() {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			const keys, perKey = 20, 150
			cluster := testcluster.New(t)
			pool, err := pgxpool.New(context.Background(), cluster.URL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			o := newOutbox(t, pool)
			order := map[uuid.UUID]int{}
			for round := range perKey {
				msgs := make([]outbox.Message, keys)
				for k := range msgs {
					msgs[k] = outbox.Message{ID: uuid.New(), Topic: "t", Key: fmt.Sprintf("k%d", k), Payload: []byte(fmt.Sprint(round))}
					order[msgs[k].ID] = round
				}
				enqueue(t, pool, o, msgs...)
			}
			rec := &recorder{fail: func(outbox.Delivery) error {
				time.Sleep(100 * time.Microsecond) // a broker's round trip, so the outage lands mid-run
				return nil
			}}
			hooks := &hooktest.Recorder{}
			r := newRelay(t, pool, rec, outbox.RelayConfig{BatchSize: 50, PollInterval: 50 * time.Millisecond, Hook: hooks})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = r.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			waitFor(t, time.Minute, func() bool { return len(rec.published()) >= keys*perKey/3 })
			if len(rec.published()) >= keys*perKey {
				t.Fatal("every message was published before the outage")
			}
			tt.Cause(cluster)
			back := time.Now()
			waitFor(t, 2*time.Minute, func() bool { return count(t, pool, "state = 'delivered'") == keys*perKey })
			seen := map[uuid.UUID]bool{}
			next := map[string]int{}
			published := rec.published()
			for _, d := range published {
				if seen[d.ID] {
					continue
				}
				seen[d.ID] = true
				if got, want := order[d.ID], next[d.Key]; got != want {
					t.Fatalf("key %s: message %d first published when %d was next", d.Key, got, want)
				}
				next[d.Key]++
			}
			t.Logf("all %d messages delivered %s after the server was back; %d published twice",
				keys*perKey, time.Since(back).Round(time.Millisecond), len(published)-len(seen))
			evs := hooks.Outages()
			if tt.Declared && (len(evs) < 2 || evs[0].Over || !evs[len(evs)-1].Over) {
				t.Fatalf("the hook heard %+v, want an outage's start and end", evs)
			}
		})
	}
}
